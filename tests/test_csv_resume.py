"""A run resumed into its own log folder keeps its ``metrics.csv`` rows from before the resume.

Lightning's CSV writer deletes the file; a study's trial resumed after a kill (or a run given a
fixed ``version``) lost its curve up to the checkpoint. These tests run the real Trainer.
"""

import csv
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from genae_lightning.loggers import GenaeCSVLogger


class Logged(BoringModel):
    """BoringModel that logs its loss (and, from ``extra_from`` on, a second key) every step."""

    def __init__(self, extra_from: int | None = None) -> None:
        super().__init__()
        self.extra_from = extra_from

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train/loss", out["loss"])
        if self.extra_from is not None and self.global_step >= self.extra_from:
            self.log("train/extra", torch.tensor(1.0))
        return out


def fit(tmp_path: Path, max_steps: int, model: L.LightningModule,
        ckpt_path: str | None = None) -> Path:
    logger = GenaeCSVLogger(str(tmp_path), name="run", version="fixed",
                            flush_logs_every_n_steps=1)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=4,
                                  save_top_k=-1, filename="{step}")
    trainer = L.Trainer(max_steps=max_steps, logger=logger, callbacks=[checkpoints],
                        log_every_n_steps=1, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, accelerator="cpu")
    trainer.fit(model, ckpt_path=ckpt_path)
    return Path(logger.log_dir) / "metrics.csv"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_resumed_run_keeps_the_rows_before_its_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    path = fit(tmp_path, 10, Logged())  # "killed" after step 10; its last checkpoint: step 8
    assert [int(r["step"]) for r in rows(path)] == list(range(10))
    fit(tmp_path, 12, Logged(extra_from=9), ckpt_path=str(tmp_path / "checkpoints/step=8.ckpt"))
    kept = rows(path)
    # steps 0-7 from the first process, 8-11 from the resumed one: each step once, in order
    assert [int(r["step"]) for r in kept] == list(range(12))
    assert all(r["train/loss"] for r in kept)
    # the resumed process's new key is a column; the earlier rows have it empty
    assert [r["train/extra"] for r in kept] == [""] * 9 + ["1.0"] * 3
    assert not list(path.parent.glob("*.partial"))


def test_a_fresh_run_into_a_used_folder_replaces_its_rows(tmp_path) -> None:
    path = fit(tmp_path, 6, Logged())
    (tmp_path / "checkpoints").rename(tmp_path / "old")
    fit(tmp_path, 3, Logged())
    assert [int(r["step"]) for r in rows(path)] == [0, 1, 2]
