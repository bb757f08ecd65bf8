"""Numerically delicate terms run in float32 even under mixed precision (autocast).

Autocast rounds linear/conv outputs to bfloat16/float16; terms that subtract nearly equal numbers
(a KL, an MMD, a log-density summed over dimensions, a finite difference) lose all their digits
in those formats, so they promote their inputs first, and switch autocast off around matmuls.
"""

import torch
from torch import Tensor


def at_least_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors promoted to float32 if of lower precision (float64 stays float64).

    Example:
        >>> a, b = at_least_float32(torch.ones(1, dtype=torch.bfloat16), torch.ones(1).double())
        >>> a.dtype, b.dtype
        (torch.float32, torch.float64)
    """
    return tuple(t.to(torch.promote_types(t.dtype, torch.float32)) for t in tensors)
