"""Reliability callbacks: skip a few non-finite batches, and checkpoint on Ctrl-C / SIGTERM."""

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class NonFiniteGuard(L.Callback):
    """Allow up to ``skip_nonfinite`` batches with a NaN/Inf loss term to be skipped.

    Every method already stops on a non-finite term (saving the last good weights and naming the
    term, step and last finite values); this callback only sets the skip budget. Skipped batches
    are counted in ``train/nonfinite_skipped`` and the count is saved in checkpoints.

    Args:
        skip_nonfinite: How many bad batches a run may skip before it stops.
    """

    def __init__(self, skip_nonfinite: int = 0) -> None:
        if skip_nonfinite < 0:
            raise ValueError(f"skip_nonfinite must be >= 0, got {skip_nonfinite}")
        self.skip_nonfinite = skip_nonfinite

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Hand the budget to the module."""
        pl_module.skip_nonfinite = self.skip_nonfinite


def was_interrupted(trainer: L.Trainer) -> bool:
    """Whether a :class:`GracefulInterrupt` stopped this run early."""
    return bool(getattr(trainer, "genae_interrupted", False))


class GracefulInterrupt(L.Callback):
    """On Ctrl-C or SIGTERM, finish the current step, write a resumable checkpoint, then stop.

    The checkpoint (``interrupted.ckpt`` beside the run's other checkpoints) holds the weights,
    optimizer, schedules and the data loader's position; resume with
    ``genae fit --config ... --ckpt_path <it>``. A second Ctrl-C aborts at once. ``genae fit``
    adds this callback to every run.
    """

    def __init__(self, filename: str = "interrupted.ckpt") -> None:
        self.filename = filename
        self._signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self._signal = signum
        rank_zero_info(f"received {signal.Signals(signum).name}: checkpointing after this step")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the handlers (main thread only)."""
        self._signal = None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def checkpoint_path(self, trainer: L.Trainer) -> Path:
        """Where the interrupt checkpoint goes: the ModelCheckpoint folder, else the root dir."""
        dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
        return Path(dirpath or Path(trainer.default_root_dir) / "checkpoints") / self.filename

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        """At a step boundary after a signal: save and ask the trainer to stop."""
        # under DDP the processes agree (one tiny all-reduce a step): a signal that reached some
        # of them first stops all at the same step, so the collective save cannot deadlock
        signalled = trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False)
        if not signalled or trainer.should_stop:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        trainer.genae_interrupted = True  # type: ignore[attr-defined]
        trainer.should_stop = True
        step = trainer.global_step
        rank_zero_info(f"saved {path} at step {step}; resume with --ckpt_path {path}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the previous signal handlers back."""
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exc: BaseException
    ) -> None:
        """Put the previous signal handlers back on errors too."""
        self._restore()
