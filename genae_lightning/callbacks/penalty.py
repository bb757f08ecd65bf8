"""Growing penalty coefficients mu and mu_in (InjFlow paper, section 4)."""

from typing import Any

import lightning as L
import torch

from genae_lightning.functional import penalty_coefficient


class PenaltySchedule(L.Callback):
    """Set the module's ``mu`` and ``mu_in`` to ``1 + i**nu / scale`` before optimizer step i.

    The value is a function of ``trainer.global_step`` alone, which Lightning restores on resume,
    so a resumed run continues the schedule exactly. Logged as ``penalty/mu`` and ``penalty/mu_in``.

    Args:
        nu: Growth exponent (the paper searches {1, 1.3}).
        scale: Divisor of i**nu (the paper: 1000).
        targets: Names of the module's penalty buffers to set.
    """

    def __init__(
        self, nu: float = 1.0, scale: float = 1000.0, targets: tuple[str, ...] = ("mu", "mu_in")
    ) -> None:
        if nu <= 0 or scale <= 0:
            raise ValueError(f"nu and scale must be > 0, got nu={nu}, scale={scale}")
        self.nu, self.scale, self.targets = nu, scale, tuple(targets)

    def value(self, step: int) -> float:
        """The penalty coefficient at optimizer step ``step``."""
        return penalty_coefficient(step, self.nu, self.scale)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail early when the module has no penalty to schedule."""
        missing = [
            t for t in self.targets if not isinstance(getattr(pl_module, t, None), torch.Tensor)
        ]
        if missing:
            raise ValueError(
                f"PenaltySchedule sets {list(self.targets)}, but {type(pl_module).__name__} has no "
                f"tensor attribute(s) {missing}; remove the callback or use a method with "
                "penalties "
                "(e.g. InjFlow)"
            )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Set and log the coefficients for the coming step."""
        value = self.value(trainer.global_step)
        for target in self.targets:
            getattr(pl_module, target).fill_(value)
            pl_module.log(f"penalty/{target}", value, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings, saved in checkpoints."""
        return {"nu": self.nu, "scale": self.scale}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to resume with a different schedule than the checkpoint's."""
        saved = (state_dict.get("nu"), state_dict.get("scale"))
        if saved != (self.nu, self.scale):
            raise ValueError(
                f"resuming with PenaltySchedule(nu={self.nu}, scale={self.scale}) but the "
                "checkpoint "
                f"was trained with nu={saved[0]}, scale={saved[1]}; use the checkpoint's values"
            )
