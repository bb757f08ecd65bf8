"""Growing penalty coefficients mu and mu_in (InjFlow paper, section 4)."""

from typing import Any

import lightning as L
import torch

from genae_lightning.functional import penalty_coefficient


class PenaltySchedule(L.Callback):
    """Set the module's ``mu`` and ``mu_in`` to ``1 + i**nu / scale`` before optimizer step i.

    The value is a function of ``trainer.global_step`` alone, which Lightning restores on resume,
    so a resumed run continues the schedule exactly. Logged as ``penalty/mu`` and ``penalty/mu_in``.

    With ``reference_steps`` set, the paper's schedule of a ``reference_steps``-step run is
    compressed (or stretched) into this run: step i of a run of ``trainer.max_steps`` steps gets
    the paper's value at step ``i * reference_steps / max_steps``, so every run ends at (about)
    the paper's final weight ``1 + reference_steps**nu / scale``, whatever its length. The
    mapping needs ``max_steps``: an epoch-based run (``max_steps=-1``) is refused, and so is a
    resume with another ``max_steps`` than the checkpoint's (it would jump the schedule).

    Args:
        nu: Growth exponent (the paper searches {1, 1.3}).
        scale: Divisor of i**nu (the paper: 1000).
        targets: Names of the module's penalty buffers to set.
        reference_steps: Length of the run whose schedule is mapped onto this one (the paper:
            100_000 on MNIST); None (default): the paper's literal schedule, step i gets mu_i.
    """

    def __init__(
        self,
        nu: float = 1.0,
        scale: float = 1000.0,
        targets: tuple[str, ...] = ("mu", "mu_in"),
        reference_steps: int | None = None,
    ) -> None:
        if nu <= 0 or scale <= 0:
            raise ValueError(f"nu and scale must be > 0, got nu={nu}, scale={scale}")
        if reference_steps is not None and (
            isinstance(reference_steps, bool) or not isinstance(reference_steps, int)
            or reference_steps < 1
        ):
            raise ValueError(
                f"reference_steps must be an integer >= 1 (the paper's MNIST run: 100000) or "
                f"None for the literal schedule, got {reference_steps!r}"
            )
        self.nu, self.scale, self.targets = nu, scale, tuple(targets)
        self.reference_steps = reference_steps
        self.max_steps: int | None = None  # the run's, set in setup (reference_steps only)
        self._saved_max_steps: int | None = None

    def value(self, step: int) -> float:
        """The penalty coefficient at optimizer step ``step`` of this run."""
        if self.reference_steps is None:
            return penalty_coefficient(step, self.nu, self.scale)
        if self.max_steps is None:
            raise RuntimeError(
                "PenaltySchedule(reference_steps=...) maps steps onto the run's max_steps, which "
                "is set when the Trainer sets it up; call value() after trainer.fit started"
            )
        return penalty_coefficient(step * self.reference_steps / self.max_steps, self.nu,
                                   self.scale)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail early when the module has no penalty to schedule, or the run has no max_steps."""
        if self.reference_steps is not None and stage == "fit":
            max_steps = trainer.max_steps
            if max_steps is None or max_steps < 1:
                raise ValueError(
                    f"PenaltySchedule(reference_steps={self.reference_steps}) maps the paper's "
                    f"schedule onto the run's max_steps, but the Trainer has max_steps="
                    f"{max_steps} (epoch-based); set trainer.max_steps, or use "
                    "reference_steps=None for the literal schedule"
                )
            self.max_steps = int(max_steps)
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

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Refuse a resume that changed ``max_steps`` under a mapped schedule."""
        saved = self._saved_max_steps
        if self.reference_steps is not None and saved is not None and saved != self.max_steps:
            raise ValueError(
                f"resuming PenaltySchedule(reference_steps={self.reference_steps}) with "
                f"max_steps={self.max_steps}, but the checkpoint was trained with "
                f"max_steps={saved}: the schedule maps step i to i * reference_steps / max_steps, "
                f"so changing max_steps would jump mu; resume with max_steps={saved}"
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
        return {"nu": self.nu, "scale": self.scale, "reference_steps": self.reference_steps,
                "max_steps": self.max_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to resume with a different schedule than the checkpoint's."""
        saved = (state_dict.get("nu"), state_dict.get("scale"))
        if saved != (self.nu, self.scale):
            raise ValueError(
                f"resuming with PenaltySchedule(nu={self.nu}, scale={self.scale}) but the "
                "checkpoint "
                f"was trained with nu={saved[0]}, scale={saved[1]}; use the checkpoint's values"
            )
        saved_reference = state_dict.get("reference_steps")
        if saved_reference != self.reference_steps:
            raise ValueError(
                f"resuming with PenaltySchedule(reference_steps={self.reference_steps}) but the "
                f"checkpoint was trained with reference_steps={saved_reference}; use the "
                "checkpoint's value"
            )
        self._saved_max_steps = state_dict.get("max_steps")
