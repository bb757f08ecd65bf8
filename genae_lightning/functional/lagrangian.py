"""Dual ascent on a Lagrange multiplier from a moving average of the constraint (GECO-style).

For a constraint E[c] <= target with multiplier lambda >= 0, the Lagrangian adds
lambda (E[c] - target) to the loss. After each primal step, the batch value of c updates an
exponential moving average, and the multiplier takes a projected gradient-ascent step on the
debiased average (Rezende & Viola 2018, "Taming VAEs", use the same moving average; they update
lambda multiplicatively, here the step is additive and projected on lambda >= 0)::

    ema_t    = decay ema_{t-1} + (1 - decay) c_t,        ema_0 = 0
    lambda_t = max(0, lambda_{t-1} + lr (ema_t / (1 - decay^t) - target))

Every update is a deterministic function of the batch values, so a run resumed from a checkpoint
holding (lambda, ema, t) continues exactly.
"""

import torch
from torch import Tensor


def _check_decay(decay: float) -> None:
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"moving-average decay must be in [0, 1), got {decay}")


def moving_average(ema: Tensor, value: Tensor, decay: float) -> Tensor:
    """The moving-average step: decay * ema + (1 - decay) * value.

    Example:
        >>> import torch
        >>> moving_average(torch.tensor(0.0), torch.tensor(4.0), decay=0.75)
        tensor(1.)
    """
    _check_decay(decay)
    return decay * ema + (1.0 - decay) * value


def debiased(ema: Tensor, decay: float, steps: int | Tensor) -> Tensor:
    """The debiased average ema / (1 - decay^steps), without the pull towards its zero start.

    Example:
        >>> import torch
        >>> debiased(torch.tensor(1.0), decay=0.75, steps=1)  # one value, 4.0, seen
        tensor(4.)
    """
    _check_decay(decay)
    steps = torch.as_tensor(steps)
    if bool(steps < 1):
        raise ValueError(f"the moving average is empty (steps={int(steps)}); update it first")
    return ema / (1.0 - decay ** steps.to(ema.dtype))


def dual_ascent(multiplier: Tensor, violation: Tensor, lr: float) -> Tensor:
    """max(0, multiplier + lr * violation): one projected ascent step on the dual.

    The multiplier grows while the constraint is violated (violation > 0) and shrinks, never
    below 0, while it holds with slack.

    Example:
        >>> import torch
        >>> dual_ascent(torch.tensor(0.5), torch.tensor(2.0), lr=0.1)
        tensor(0.7000)
        >>> dual_ascent(torch.tensor(0.5), torch.tensor(-10.0), lr=0.1)
        tensor(0.)
    """
    if lr <= 0:
        raise ValueError(f"dual step size must be > 0, got {lr}")
    return torch.clamp(multiplier + lr * violation, min=0.0)


def lagrangian_term(value: Tensor, multiplier: Tensor, target: float) -> Tensor:
    """The constraint's Lagrangian term, multiplier * (value - target), the multiplier held fixed.

    Example:
        >>> import torch
        >>> lagrangian_term(torch.tensor(3.0), torch.tensor(2.0), target=1.0)
        tensor(4.)
    """
    # A copy, so an in-place dual update before backward leaves the saved factor intact.
    return multiplier.detach().clone() * (value - target)
