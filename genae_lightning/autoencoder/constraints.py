"""How InjFlow enforces its constraints: a growing penalty, or an augmented Lagrangian.

A constraint object owns the coefficients of the two penalised quantities of InjFlow's loss,
E||x - g(h(x))||^2 (``rec``) and the injectivity hinge (``inj``): the penalty weights ``mu`` and
``mu_in`` (buffers) and, for the augmented Lagrangian, the Lagrange multipliers. The method
steps it from its training hooks with the trainer's ``global_step`` and ``max_steps``; its state
is in the method's state dict, so checkpoints hold it and a resume continues it exactly.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from genae_lightning.functional import penalty_coefficient
from genae_lightning.functional.lagrangian import (
    debiased,
    dual_ascent,
    lagrangian_term,
    moving_average,
)
from genae_lightning.trust import trusted_base


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


@trusted_base("constraint")
class Constraint(nn.Module, ABC):
    """The penalty weights ``mu`` and ``mu_in`` (buffers, 1 at the start) and their updates.

    The loss is ``... + mu * rec + ... + mu_in * inj``, then :meth:`augment`. Hooks, called by
    the method: :meth:`setup` (fit start, with the trainer's ``max_steps``), :meth:`check_resume`
    (train start, after a checkpoint was restored), :meth:`before_step` (before each optimizer
    step), :meth:`after_step` (after each training step), and :meth:`checkpoint_state` /
    :meth:`load_checkpoint_state` (saved under the checkpoint's ``"constraint"`` key).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mu", torch.tensor(1.0))
        self.register_buffer("mu_in", torch.tensor(1.0))

    @abstractmethod
    def init_args(self) -> dict[str, Any]:
        """The constructor arguments, saved as the method's ``constraint`` hyperparameter."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Plain settings the method saves in checkpoints next to the state dict (none here)."""
        return {}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Read what :meth:`checkpoint_state` saved (when a checkpoint is loaded)."""

    def setup(self, max_steps: int | None) -> None:
        """Check the run's settings when fitting starts (nothing to check by default)."""

    def check_resume(self) -> None:
        """Refuse a resume that would not continue the checkpoint's run (nothing by default)."""

    def before_step(self, step: int) -> dict[str, float]:
        """Set the coefficients for optimizer step ``step``; returns what to log (none here)."""
        return {}

    def augment(self, total: Tensor, rec: Tensor, inj: Tensor) -> Tensor:
        """The loss with this constraint's further terms (none here)."""
        return total

    def after_step(self, reduce: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """Update after a training step (``reduce`` averages over processes); returns logs."""
        return {}


class Penalty(Constraint):
    """The paper's penalty method: mu = mu_in = 1 + i**nu / scale before optimizer step i.

    The value is a function of ``global_step`` alone, which Lightning restores on resume, so a
    resumed run continues the schedule exactly. Logged as ``penalty/mu`` and ``penalty/mu_in``.

    With ``reference_steps`` set, the paper's schedule of a ``reference_steps``-step run is
    compressed (or stretched) into this run: step i of a run of ``trainer.max_steps`` steps gets
    the paper's value at step ``i * reference_steps / max_steps``, so every run ends at (about)
    the paper's final weight ``1 + reference_steps**nu / scale``, whatever its length. With
    ``reference_steps=100_000`` (every bundled InjFlow config), a run of the paper's 100k steps
    gets exactly the paper's schedule (step i maps to i, bit for bit), and a 1000-step run ends
    at the paper's final weight (its last step, 999, gets the paper's value at step 99_900).

    The mapping needs ``max_steps``: an epoch-based run (``max_steps=-1``) is refused when
    fitting starts, before any step, with the flags that fix it: ``--trainer.max_steps N``
    (the run's total optimizer steps), or the literal schedule (``--model.init_args.constraint
    '{"class_path": "genae_lightning.methods.Penalty", "init_args": {"reference_steps":
    null}}'``), or ``AugmentedLagrangian``, which needs no run length. A resume with another
    ``max_steps`` than the checkpoint's is refused too (it would jump the schedule), and so is
    one with another ``nu``, ``scale`` or ``reference_steps``.

    Args:
        nu: Growth exponent (the paper searches {1, 1.3}).
        scale: Divisor of i**nu (the paper: 1000).
        reference_steps: Length of the run whose schedule is mapped onto this one (the paper:
            100_000 on MNIST); None (default): the paper's literal schedule, step i gets mu_i.
    """

    def __init__(self, nu: float = 1.0, scale: float = 1000.0,
                 reference_steps: int | None = None) -> None:
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
        super().__init__()
        self.nu, self.scale, self.reference_steps = nu, scale, reference_steps
        self.max_steps: int | None = None  # the run's, set in setup (reference_steps only)
        self._saved: dict[str, Any] | None = None  # the checkpoint's settings, on resume

    def init_args(self) -> dict[str, Any]:
        """``nu``, ``scale`` and ``reference_steps``."""
        return {"nu": self.nu, "scale": self.scale, "reference_steps": self.reference_steps}

    def value(self, step: int) -> float:
        """The penalty coefficient at optimizer step ``step`` of this run."""
        if self.reference_steps is None:
            return penalty_coefficient(step, self.nu, self.scale)
        if self.max_steps is None:
            raise RuntimeError(
                "Penalty(reference_steps=...) maps steps onto the run's max_steps, which is set "
                "when the Trainer sets the method up; call value() after trainer.fit started"
            )
        return penalty_coefficient(step * self.reference_steps / self.max_steps, self.nu,
                                   self.scale)

    def setup(self, max_steps: int | None) -> None:
        """Record the run's ``max_steps``; refuse an epoch-based run with ``reference_steps``."""
        if self.reference_steps is None:
            return
        if max_steps is None or max_steps < 1:
            raise ValueError(
                f"Penalty(reference_steps={self.reference_steps}) maps the paper's schedule onto "
                f"the run's max_steps, but the Trainer has max_steps={max_steps} (epoch-based), "
                "so the run's length is unknown. Set the length in optimizer steps: "
                "--trainer.max_steps N (Trainer(max_steps=N); an epoch-based budget is epochs x "
                "batches per epoch / accumulate_grad_batches), or keep epochs and use the "
                "literal schedule: --model.init_args.constraint '{\"class_path\": "
                "\"genae_lightning.methods.Penalty\", \"init_args\": {\"reference_steps\": "
                "null}}' (Penalty(reference_steps=None)), or a constraint that needs no run "
                "length: "
                "--model.init_args.constraint genae_lightning.methods.AugmentedLagrangian"
            )
        self.max_steps = int(max_steps)

    def check_resume(self) -> None:
        """Refuse a resume with other settings, or (mapped schedule) another ``max_steps``."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        if (saved.get("nu"), saved.get("scale")) != (self.nu, self.scale):
            raise ValueError(
                f"resuming with Penalty(nu={self.nu}, scale={self.scale}) but the checkpoint was "
                f"trained with nu={saved.get('nu')}, scale={saved.get('scale')}; use the "
                "checkpoint's values"
            )
        if saved.get("reference_steps") != self.reference_steps:
            raise ValueError(
                f"resuming with Penalty(reference_steps={self.reference_steps}) but the "
                f"checkpoint was trained with reference_steps={saved.get('reference_steps')}; "
                "use the checkpoint's value"
            )
        old_max = saved.get("max_steps")
        if self.reference_steps is not None and old_max is not None and old_max != self.max_steps:
            raise ValueError(
                f"resuming Penalty(reference_steps={self.reference_steps}) with "
                f"max_steps={self.max_steps}, but the checkpoint was trained with "
                f"max_steps={old_max}: the schedule maps step i to i * reference_steps / "
                f"max_steps, so changing max_steps would jump mu; resume with max_steps={old_max}"
            )

    def before_step(self, step: int) -> dict[str, float]:
        """Set ``mu`` and ``mu_in`` for optimizer step ``step``."""
        value = self.value(step)
        self.mu.fill_(value)
        self.mu_in.fill_(value)
        return {"mu": value, "mu_in": value}

    def checkpoint_state(self) -> dict[str, Any]:
        """The schedule's settings and the run's ``max_steps``, saved in checkpoints."""
        return {**self.init_args(), "max_steps": self.max_steps}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Keep the checkpoint's settings for :meth:`check_resume`."""
        self._saved = dict(state) if state else None

    def extra_repr(self) -> str:
        """The settings, shown in ``repr``."""
        return f"nu={self.nu}, scale={self.scale}, reference_steps={self.reference_steps}"


class AugmentedLagrangian(Constraint):
    """Penalties mu = mu_in = 1 fixed plus Lagrange multipliers grown by dual ascent.

    The batch means of the two penalised quantities get multipliers for E||x - g(z)||^2 <= kappa
    and E[inj] <= 0: the loss adds lambda (E||x - g(z)||^2 - kappa) + lambda_in E[inj], and after
    each training step lambda and lambda_in take a projected dual-ascent step on a moving average
    of their constraint (:class:`DualAscentMultiplier` buffers ``rec_multiplier.*`` and
    ``inj_multiplier.*``). Logged as ``penalty/lambda`` and ``penalty/lambda_in``.

    Args:
        kappa: Tolerance of the reconstruction constraint E||x - g(h(x))||^2 <= kappa, in the
            units of ``train/rec`` (sum over pixels).
        dual_lr: Dual step size of lambda, per unit of E||x - g(h(x))||^2 - kappa per step.
        dual_lr_in: Dual step size of lambda_in, per unit of the injectivity hinge per step.
        ema_decay: Decay of the moving averages that drive the dual steps.
    """

    def __init__(self, kappa: float = 0.0, dual_lr: float = 1e-3, dual_lr_in: float = 1.0,
                 ema_decay: float = 0.99) -> None:
        if kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        super().__init__()
        self.kappa, self.dual_lr, self.dual_lr_in, self.ema_decay = (
            kappa, dual_lr, dual_lr_in, ema_decay)
        self.rec_multiplier = DualAscentMultiplier(kappa, dual_lr, ema_decay)
        self.inj_multiplier = DualAscentMultiplier(0.0, dual_lr_in, ema_decay)
        self._values: tuple[Tensor, Tensor] | None = None

    def init_args(self) -> dict[str, Any]:
        """``kappa``, ``dual_lr``, ``dual_lr_in`` and ``ema_decay``."""
        return {"kappa": self.kappa, "dual_lr": self.dual_lr, "dual_lr_in": self.dual_lr_in,
                "ema_decay": self.ema_decay}

    def augment(self, total: Tensor, rec: Tensor, inj: Tensor) -> Tensor:
        """The loss plus lambda (rec - kappa) + lambda_in inj; the values are kept for the step."""
        self._values = (rec.detach(), inj.detach())
        return total + self.rec_multiplier.term(rec) + self.inj_multiplier.term(inj)

    def after_step(self, reduce: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """One dual-ascent step on the step's values, averaged over processes first."""
        if self._values is None:
            raise RuntimeError("AugmentedLagrangian.after_step needs a loss computed first")
        rec, inj = (reduce(v) for v in self._values)
        self.rec_multiplier.update(rec)
        self.inj_multiplier.update(inj)
        return {"lambda": self.rec_multiplier.multiplier,
                "lambda_in": self.inj_multiplier.multiplier}
