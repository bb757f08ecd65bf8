"""Every checkpoint an interrupted fit leaves resumes exactly where the interrupt stopped it.

An interrupt before ModelCheckpoint's first interval leaves two files: ``interrupted.ckpt``
and, newer, the ``last.ckpt`` Lightning writes at the end of training (``save_last``). The
newer is what ``--ckpt_path last`` and a study's resume read; Lightning counts the cut-short
epoch in it as completed, so without the interrupt's position it would resume at the next epoch.
"""

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genae_lightning.callbacks import GracefulInterrupt, was_interrupted
from genae_lightning.checkpoints.io import SafeCheckpointIO
from genae_lightning.commands.resume import LAST_PATTERNS
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE
from genae_lightning.studies.trial import last_checkpoint
from tests.conftest import tiny_trainer
from tests.methods.test_methods_contract import build

STOP, TOTAL = 3, 8  # 5 batches per epoch: the stop is mid-epoch and the run crosses an epoch


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(trainer.callback_metrics["train/loss"])


class SigtermAt(L.Callback):
    """Sends this process SIGTERM during the given step (as Ctrl-C or a scheduler would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def fit(root: Path, stop: int | None = None, ckpt_path: Path | None = None):
    L.seed_everything(0)
    model = build(AE)
    record = RecordLoss()
    callbacks = [record, GracefulInterrupt(),
                 ModelCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=100,
                                 save_last=True)]
    if stop is not None:
        callbacks.insert(0, SigtermAt(stop - 1))  # that step finishes, then the fit stops
    trainer = tiny_trainer(root, max_steps=TOTAL, enable_checkpointing=True, deterministic=True,
                           limit_val_batches=0, callbacks=callbacks, plugins=[SafeCheckpointIO()])
    trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 8, 8), num_samples=40,
                                                  batch_size=8), ckpt_path=ckpt_path)
    return record.losses, model, trainer


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    full_losses, full_model, _ = fit(root / "full")
    losses, _, trainer = fit(root / "cut", stop=STOP)
    assert was_interrupted(trainer) and sorted(losses) == list(range(1, STOP + 1))
    return root, full_losses, full_model


@pytest.mark.parametrize("name", ["interrupted.ckpt", "last.ckpt"])
def test_each_file_an_interrupt_leaves_resumes_exactly(interrupted, name) -> None:
    root, full_losses, full_model = interrupted
    ckpt = root / "cut" / "checkpoints" / name
    assert torch.load(ckpt, weights_only=False)["global_step"] == STOP
    losses, model, _ = fit(root / f"resumed-{name}", ckpt_path=ckpt)
    assert sorted(losses) == list(range(STOP + 1, TOTAL + 1))
    for step, loss in losses.items():
        assert loss == pytest.approx(full_losses[step], rel=1e-6, abs=1e-7), step
    for a, b in zip(full_model.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_newest_file_is_the_one_the_resumes_read(interrupted) -> None:
    """The reason the fix matters: ``--ckpt_path last`` and a study take the newest file."""
    root, _, _ = interrupted
    folder = root / "cut" / "checkpoints"
    assert {"last.ckpt", "interrupted.ckpt"} <= {p.name for p in folder.iterdir()}
    assert "last.ckpt" in LAST_PATTERNS and "interrupted.ckpt" in LAST_PATTERNS
    assert last_checkpoint(root / "cut") == folder / "last.ckpt"
