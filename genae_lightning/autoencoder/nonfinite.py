"""Non-finite loss terms: the error, and the stop of a run without ``NonFiniteGuard``.

A method reports each training step's terms to its ``nonfinite_handler`` and skips the update
when the handler says so. ``NonFiniteGuard`` (``genae_lightning.callbacks``) installs the
handler that holds the policy (skip budget, last finite values, saving the last good weights);
without it, :func:`stop_if_nonfinite` stops the run at the first non-finite term.
"""

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor

# (module, {"loss": total, **terms}) -> whether to apply the step's update.
NonFiniteHandler = Callable[[L.LightningModule, dict[str, Tensor]], bool]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


def all_finite(values: dict[str, Tensor]) -> bool:
    """Whether every term is finite (one device sync)."""
    return bool(torch.stack([v.detach().float() for v in values.values()]).isfinite().all())


def nonfinite_error(module: L.LightningModule, values: dict[str, Tensor],
                    detail: str) -> NonFiniteLossError:
    """The error naming the non-finite terms and the step; ``detail`` says what was kept."""
    bad = [k for k, v in values.items() if not torch.isfinite(v).all()]
    names = ", ".join(bad) or "loss terms of another process"  # under DDP, decided together
    return NonFiniteLossError(
        f"{type(module).__name__}: non-finite {names} at step {module.global_step}"
        f"{detail} Lower the learning rate, check the data, or allow skipping a few bad batches "
        "with the NonFiniteGuard(skip_nonfinite=N) callback."
    )


def stop_if_nonfinite(module: L.LightningModule, values: dict[str, Tensor]) -> bool:
    """The handler of a run without ``NonFiniteGuard``: a non-finite term stops it.

    Under DDP every process decides together (a non-finite term on one stops them all), so no
    process waits in the gradient all-reduce for one that has raised.
    """
    finite = all_finite(values)
    trainer = getattr(module, "_trainer", None)
    if trainer is not None:
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if finite:
        return True
    raise nonfinite_error(module, values, ". No checkpoint was written: add the NonFiniteGuard "
                          "callback (genae fit adds it) to keep the weights from before the "
                          "update that led here.")
