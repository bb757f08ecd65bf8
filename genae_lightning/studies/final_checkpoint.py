"""The callback every trial's ``genae fit`` gets: its ``last.ckpt`` holds the final weights.

A trial evaluates ``checkpoints/last.ckpt`` and records its ``global_step``. Lightning's
``ModelCheckpoint`` with ``every_n_train_steps`` saves only at multiples of the interval, not at
the end of training: a fit of 1800 steps with an interval of 250 would leave the weights of step
1750 there, and an equal-time trial (stopped by ``max_time``) those of its last multiple.
``FitLatentPrior`` rewrites ``last.ckpt`` with the final weights at the end of fit, but a study
need not list it. :class:`FinalCheckpoint` closes the gap: at the end of training it writes the
final state to the trial's ``last.ckpt`` unless that file already holds the final step (then it
writes nothing, so a study whose ``last.ckpt`` was already final, as with ``FitLatentPrior``,
gets the very same file). An interrupted fit (``GracefulInterrupt``: SIGTERM, Ctrl-C) writes
nothing here: it resumes from ``interrupted.ckpt`` and ends later.

:mod:`~genae_lightning.studies.trial` appends it to the fit's callbacks
(``--trainer.callbacks+=``), so the run's ``config.yaml`` names it; ``genae`` defines it (the
``study`` command imports this module), so the allow-list of ``--config`` files knows it.
"""

from pathlib import Path

import lightning as L

from genae_lightning.callbacks.reliability import was_interrupted
from genae_lightning.checkpoints.reading import read_checkpoint


class FinalCheckpoint(L.Callback):
    """Write the final training state to ``path`` at the end of training, unless it is there.

    Args:
        path: The checkpoint file the trial evaluates (``<run folder>/checkpoints/last.ckpt``).
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def saved_step(self) -> int | None:
        """The ``global_step`` of the file at :attr:`path`, or None when there is none."""
        path = Path(self.path)
        if not path.is_file():
            return None
        step = read_checkpoint(path).get("global_step")
        return None if step is None else int(step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save the final state when :attr:`path` is missing or holds an earlier step."""
        if was_interrupted(trainer):  # resumes from interrupted.ckpt; its real end comes later
            return
        stale = trainer.is_global_zero and self.saved_step() != trainer.global_step
        if trainer.strategy.broadcast(stale, src=0):  # every process takes part in the save
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.path)
