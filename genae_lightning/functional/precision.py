"""Numerically delicate terms run in float32 even under mixed precision (autocast).

Autocast rounds linear/conv outputs to bfloat16/float16; terms that subtract nearly equal numbers
(a KL, an MMD, a log-density summed over dimensions, a finite difference) lose all their digits
in those formats, so they promote their inputs first, and switch autocast off around matmuls.
"""

import torch
from torch import Tensor, nn


def at_least_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors promoted to float32 if of lower precision (float64 stays float64).

    Example:
        >>> a, b = at_least_float32(torch.ones(1, dtype=torch.bfloat16), torch.ones(1).double())
        >>> a.dtype, b.dtype
        (torch.float32, torch.float64)
    """
    return tuple(t.to(torch.promote_types(t.dtype, torch.float32)) for t in tensors)


def to_module(x: Tensor, module: nn.Module) -> Tensor:
    """``x`` on ``module``'s device, and in its weights' dtype if ``x`` is a float tensor.

    For images fed to a model outside a Trainer's precision plugin, e.g. a model trained with
    ``precision="64-true"`` (float64 weights) encoding float32 images from a DataModule.
    Integer tensors keep their dtype (the model refuses them with a clear message).

    Example:
        >>> to_module(torch.ones(1), nn.Linear(1, 1).double()).dtype
        torch.float64
    """
    weight = next((p for p in module.parameters() if p.is_floating_point()), None)
    if weight is None:
        return x
    return x.to(device=weight.device, dtype=weight.dtype if x.is_floating_point() else None)
