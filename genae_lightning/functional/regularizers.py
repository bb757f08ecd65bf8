"""Parameter penalties of regularised autoencoders (AE+L2, RAE-L2)."""

from collections.abc import Iterable

import torch
from torch import Tensor


def squared_l2_norm(tensors: Iterable[Tensor]) -> Tensor:
    """Sum of the squared entries of every tensor, ||theta||_2^2 (the weight-decay penalty).

    Args:
        tensors: Parameters to penalise, e.g. ``decoder.parameters()``.

    Returns:
        A scalar; 0 when ``tensors`` is empty.

    Example:
        >>> squared_l2_norm([torch.tensor([3.0, 4.0]), torch.ones(2, 2)])
        tensor(29.)
    """
    total: Tensor | None = None
    for t in tensors:
        term = t.float().pow(2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())
