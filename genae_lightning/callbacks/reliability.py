"""Reliability callbacks: non-finite stops that keep usable weights, checkpoints on SIGTERM."""

import copy
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor

from genae_lightning.autoencoder.nonfinite import all_finite, nonfinite_error, stop_if_nonfinite

# Exit status of `genae fit` after a graceful interrupt wrote interrupted.ckpt: not 0 (a scheduler
# must not read the run as finished), not 1 (a crash) or 2 (a usage error), and not 128 + signal
# (what a shell reports for a process killed without a checkpoint). See docs/errors.md.
INTERRUPTED_EXIT_CODE = 3

# Marks a checkpoint written by NonFiniteGuard: resuming from it starts the optimizer afresh.
NONFINITE_KEY = "genae_nonfinite"


class NonFiniteGuard(L.Callback):
    """The non-finite policy: skip a few bad batches, or stop keeping the last good weights.

    A method reports each training step's terms to its ``nonfinite_handler``; this callback
    installs its own (:meth:`check_terms`), which decides. Without it a method stops on a NaN/Inf
    term with ``NonFiniteLossError`` naming the term and step. With it (``genae fit`` adds one to
    every run) the error also gives the last finite values of every term, and the stop writes
    ``nonfinite-step=<k>.ckpt`` (checkpoint folder) holding the weights from before the update
    that led to the bad loss: before each optimizer step the parameters and floating
    point buffers are copied into preallocated buffers (one ``torch._foreach_copy_``), and at the
    stop those are put back and saved, so the file's weights are the ones whose loss was last
    finite, not the blown-up ones the last update produced. The file leaves out the optimizer
    settings (its hyperparameters drop ``optimizer``) and resuming from it with this callback
    starts the optimizer afresh from the config, so a lower learning rate takes effect.

    ``skip_nonfinite`` bad batches may be skipped instead (no optimizer step), counted in
    ``train/nonfinite_skipped`` and saved in checkpoints. When a run has several guards, the
    first in the callback list is used (a config's own guard comes before the CLI's default).

    Args:
        skip_nonfinite: How many bad batches a run may skip before it stops.
    """

    def __init__(self, skip_nonfinite: int = 0) -> None:
        if skip_nonfinite < 0:
            raise ValueError(f"skip_nonfinite must be >= 0, got {skip_nonfinite}")
        self.skip_nonfinite = skip_nonfinite
        self._tensors: list[Tensor] = []
        self._snapshot: list[Tensor] = []
        self._snapshot_step: int | None = None  # global step of the update the snapshot precedes
        self._snapshot_due = False
        self._saving = False
        self._fresh_optimizers: list[dict[str, Any]] = []
        self._restart_optimizers = False
        self._last_finite: dict[str, Tensor] = {}

    def _active(self, trainer: L.Trainer) -> bool:
        return next(c for c in trainer.callbacks if isinstance(c, NonFiniteGuard)) is self

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Become the module's non-finite handler (the first guard of the run does)."""
        if self._active(trainer):
            self._last_finite = {}
            pl_module.nonfinite_handler = lambda module, values: self.check_terms(
                trainer, module, values)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give the module back its default handler (this one refers to this trainer)."""
        if self._active(trainer):
            pl_module.nonfinite_handler = stop_if_nonfinite
            self._tensors, self._snapshot = [], []

    def check_terms(
        self, trainer: L.Trainer, pl_module: L.LightningModule, values: dict[str, Tensor]
    ) -> bool:
        """Whether to apply the step's update: yes if every term is finite; else skip or stop.

        A bad batch is skipped (no optimizer step) while the ``skip_nonfinite`` budget lasts,
        counted in the module's ``nonfinite_skipped`` and logged as ``train/nonfinite_skipped``;
        past it, the last good weights are saved and ``NonFiniteLossError`` names the terms, the
        step, the last finite values and the saved file.
        """
        finite_here = all_finite(values)
        if finite_here:
            self._last_finite = {k: v.detach() for k, v in values.items()}
        # under DDP the processes decide together (one tiny all-reduce a step): a bad batch on
        # one of them skips or stops all, so the gradient all-reduce and the collective save of
        # the stop cannot deadlock
        if trainer.strategy.reduce_boolean_decision(finite_here, all=True):
            return True
        if int(pl_module.nonfinite_skipped) < self.skip_nonfinite:
            pl_module.nonfinite_skipped += 1
            pl_module.log("train/nonfinite_skipped", pl_module.nonfinite_skipped.float(),
                          on_step=True)
            return False
        saved = self.save_last_good(trainer, pl_module)
        last = {k: round(float(v), 6) for k, v in self._last_finite.items()}
        raise nonfinite_error(pl_module, values,
                              f" (last finite values: {last or 'none yet'}). {saved}")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remember the freshly configured optimizers (before a checkpoint's state is loaded)."""
        self._fresh_optimizers = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Note whether the run resumes from a non-finite stop's checkpoint."""
        self._restart_optimizers = NONFINITE_KEY in checkpoint

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Allocate the snapshot buffers; after a non-finite stop, restart the optimizers."""
        if not self._active(trainer):
            return
        if self._restart_optimizers and self._fresh_optimizers:
            for opt, fresh in zip(trainer.optimizers, self._fresh_optimizers, strict=True):
                opt.load_state_dict(fresh)
            lrs = sorted({g["lr"] for opt in trainer.optimizers for g in opt.param_groups})
            rank_zero_info(f"resuming from a non-finite stop's checkpoint: optimizer state "
                           f"started afresh with the configured learning rate {lrs}")
            self._restart_optimizers = False
        self._tensors = [*pl_module.parameters(),
                         *(b for b in pl_module.buffers() if b.is_floating_point())]
        self._snapshot = [torch.empty_like(t) for t in self._tensors]
        self._snapshot_step = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """The next optimizer step of this batch takes a snapshot."""
        self._snapshot_due = True

    @torch.no_grad()
    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Copy the weights before the batch's first update (its loss was finite)."""
        if not self._snapshot_due or not self._tensors:
            return
        torch._foreach_copy_(self._snapshot, self._tensors)
        self._snapshot_step = trainer.global_step
        self._snapshot_due = False

    @torch.no_grad()
    def save_last_good(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """Put the snapshot back into the module, save it, and say what the file holds."""
        if self._snapshot_step is None:
            return ("No checkpoint was written: no update was applied in this run yet, so the "
                    "weights it started from already give a non-finite loss; check the data and "
                    "the model's settings, or resume from an earlier checkpoint.")
        torch._foreach_copy_(self._tensors, self._snapshot)
        folder = Path(getattr(trainer.checkpoint_callback, "dirpath", None)
                      or trainer.default_root_dir)
        path = folder / f"nonfinite-step={trainer.global_step}.ckpt"
        self._saving = True
        try:
            trainer.save_checkpoint(path)
        finally:
            self._saving = False
        return (f"Saved the weights from before the update of step {self._snapshot_step} (the "
                f"last one whose loss was finite; the module holds them too) to {path}. To "
                "continue, lower the learning rate and resume from that file, e.g. genae fit "
                "--config <same config> --model.init_args.optimizer.init_args.lr <lower> "
                f"--ckpt_path {path} (the optimizer restarts with the configured settings).")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Mark the non-finite stop's file, and drop its optimizer settings (they diverged)."""
        if not self._saving:
            return
        checkpoint[NONFINITE_KEY] = {"weights_before_update_of_step": self._snapshot_step}
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict):
            hparams.pop("optimizer", None)


def was_interrupted(trainer: L.Trainer) -> bool:
    """Whether a :class:`GracefulInterrupt` stopped this run early."""
    return bool(getattr(trainer, "genae_interrupted", False))


def local_log_dir(trainer: L.Trainer) -> str | None:
    """``trainer.log_dir`` as this process sees it, without its broadcast; None without a logger.

    Safe on one process alone (e.g. in ``on_exception``, which only the failing processes
    reach, where the collective ``trainer.log_dir`` would wait for the others forever); rank
    zero's value is the one ``trainer.log_dir`` broadcasts.
    """
    if not trainer.loggers:
        return None
    logger = trainer.loggers[0]
    if isinstance(logger, (CSVLogger, TensorBoardLogger)):
        return logger.log_dir
    return logger.save_dir


def remove_empty_log_dir(trainer: L.Trainer) -> Path | None:
    """Remove the run's log folder if it holds no file (a fit that failed before writing any).

    Returns the removed folder, or None. No collective: rank zero decides alone.
    """
    if not trainer.is_global_zero:
        return None
    log_dir = local_log_dir(trainer)
    if not log_dir or not Path(log_dir).is_dir():
        return None
    root = Path(log_dir)
    if any(p.is_file() or p.is_symlink() for p in root.rglob("*")):
        return None
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        folder.rmdir()
    root.rmdir()
    return root


class GracefulInterrupt(L.Callback):
    """On Ctrl-C or SIGTERM, finish the current step, write a resumable checkpoint, then stop.

    The checkpoint (``interrupted.ckpt`` beside the run's other checkpoints) holds the weights,
    optimizer, schedules and the data loader's position; resume with
    ``genae fit --config ... --ckpt_path <it>``. ``genae fit`` then exits with status
    :data:`INTERRUPTED_EXIT_CODE` (3), so a scheduler can requeue the job. A signal after the last
    training step (during the end-of-fit work: post-hoc priors, final metrics and grids) lets
    that work finish, saying so, as the run is then complete. A second signal stops at once.
    ``genae fit`` adds this callback to every run; on an error before the run wrote any file it
    also removes the run's empty log folder.

    Why not Lightning's own handling (2.6): on SIGTERM it sets ``trainer.received_sigterm`` and
    raises ``SIGTERMException``, a ``SystemExit`` of status 0, at its next check (after a
    training batch, at an epoch's end, or mid-validation), checkpointing nothing itself. Ctrl-C
    is a ``KeyboardInterrupt`` wherever the step is; the Trainer then exits with status 1.
    ``OnExceptionCheckpoint`` and ``ModelCheckpoint(save_on_exception=True)`` save from
    ``on_exception``, so on every crash too (a non-finite stop's diverged weights included).
    SLURM auto-requeue (``SLURMEnvironment(auto_requeue=True)``) saves ``hpc_ckpt_<n>.ckpt`` from
    inside the SIGUSR1 handler, mid-step, and only under SLURM. This callback clears Lightning's
    flag and stops at a step boundary on either signal, only on a signal, with status 3.
    """

    def __init__(self, filename: str = "interrupted.ckpt") -> None:
        self.filename = filename
        self._signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None
        self.saved: Path | None = None  # the interrupt checkpoint of the last fit, if any
        self._saving = False
        self._position: dict[str, Any] | None = None  # the interrupt checkpoint's loop state

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None:
            raise KeyboardInterrupt  # second signal: stop now
        self._signal = signum
        trainer = self._trainer
        # Lightning's own SIGTERM handler (run before this one) would end the run with exit
        # status 0 at its next check, without a checkpoint when that is in validation or the
        # end-of-fit work: this callback decides when to stop, so clear its flag
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None and hasattr(connector, "received_sigterm"):
            connector.received_sigterm = False
        if trainer is not None and trainer.fit_loop.done:
            work = [type(c).__name__ for c in trainer.callbacks
                    if c is not self and is_overridden("on_train_end", c, L.Callback)]
            rank_zero_info(
                f"received {name} after the last training step, during the end-of-fit work "
                f"({', '.join(work) or 'none'}: post-hoc priors, final metrics and grids); "
                "finishing it, then exiting (the run is complete, no interrupt checkpoint is "
                "needed); a second signal stops at once"
            )
            return
        rank_zero_info(f"received {name}: checkpointing after this step, then exiting with "
                       f"status {INTERRUPTED_EXIT_CODE}; a second signal stops at once")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the handlers (main thread only)."""
        self._signal = None
        self._trainer = trainer
        self.saved, self._position = None, None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def _restore(self) -> None:
        # Lightning's teardown puts back the handlers it found when it installed its own, this
        # callback's among them; after an error it runs after on_exception, so hand it the
        # earlier ones (else a later Ctrl-C in this process would only be noted, not raised)
        connector = getattr(self._trainer, "_signal_connector", None)
        found = getattr(connector, "_original_handlers", None)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
            if isinstance(found, dict) and found.get(sig) == self._handler:
                found[sig] = handler
        self._previous.clear()
        self._trainer = None

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
        self._saving = True
        try:
            trainer.save_checkpoint(path)
        finally:
            self._saving = False
        trainer.genae_interrupted = True  # type: ignore[attr-defined]
        self.saved = path
        trainer.should_stop = True
        step = trainer.global_step
        rank_zero_info(f"saved {path} at step {step}; resume with --ckpt_path {path}")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Give a checkpoint saved after the interrupt the interrupt checkpoint's position.

        Lightning counts the epoch a stop cut short as completed, and ``ModelCheckpoint`` with
        ``save_last`` writes ``last.ckpt`` at the end of training when it has not written one in
        this fit (an interrupt before its first interval): newer than ``interrupted.ckpt``, so
        ``--ckpt_path last`` and a study's resume read it, it would resume at the next epoch,
        skipping the rest of this one. With the interrupt's loop state it resumes exactly.
        """
        if self._saving:
            self._position = copy.deepcopy(
                {k: checkpoint[k] for k in ("global_step", "epoch", "loops")})
        elif (self._position is not None
              and checkpoint["global_step"] == self._position["global_step"]):
            checkpoint.update(copy.deepcopy(self._position))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the previous signal handlers back."""
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exc: BaseException
    ) -> None:
        """Put the previous signal handlers back, and drop an empty log folder."""
        self._restore()
        removed = remove_empty_log_dir(trainer)
        if removed is not None:
            rank_zero_info(f"removed the empty log folder {removed} of the failed run")
