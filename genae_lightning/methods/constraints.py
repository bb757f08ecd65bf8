"""A Lagrange multiplier with its moving average, kept as buffers so checkpoints hold it."""

import torch
from torch import Tensor, nn

from genae_lightning.functional.lagrangian import (
    debiased,
    dual_ascent,
    lagrangian_term,
    moving_average,
)


class DualAscentMultiplier(nn.Module):
    """Multiplier lambda >= 0 of a batch-mean constraint E[c] <= target, updated by dual ascent.

    Buffers (in ``state_dict``, hence in checkpoints): ``multiplier`` (lambda, starts at 0),
    ``ema`` (moving average of c, starts at 0) and ``steps`` (number of updates, for debiasing).
    See :mod:`genae_lightning.functional.lagrangian` for the update.

    Args:
        target: Right-hand side of the constraint.
        lr: Dual step size (multiplier per unit of violation per update).
        decay: Decay of the moving average of c.
    """

    def __init__(self, target: float = 0.0, lr: float = 1e-3, decay: float = 0.99) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"dual step size must be > 0, got {lr}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"moving-average decay must be in [0, 1), got {decay}")
        self.target, self.lr, self.decay = target, lr, decay
        self.register_buffer("multiplier", torch.tensor(0.0))
        self.register_buffer("ema", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0))

    def term(self, value: Tensor) -> Tensor:
        """The Lagrangian term lambda (value - target), lambda held fixed (no gradient to it)."""
        return lagrangian_term(value, self.multiplier, self.target)

    def violation(self) -> Tensor:
        """Debiased moving average of c minus the target (> 0: violated)."""
        return debiased(self.ema, self.decay, self.steps) - self.target

    @torch.no_grad()
    def update(self, value: Tensor) -> None:
        """Fold a batch value of c into the average, then take one dual-ascent step."""
        self.steps += 1
        self.ema.copy_(moving_average(self.ema, value.detach().float(), self.decay))
        self.multiplier.copy_(dual_ascent(self.multiplier, self.violation(), self.lr))

    def extra_repr(self) -> str:
        """The settings, shown in ``repr``."""
        return f"target={self.target}, lr={self.lr}, decay={self.decay}"
