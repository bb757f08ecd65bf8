"""Exact resume for every method: stop at step k, resume, and get the same losses as one run."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genae_lightning.checkpoints.io import SafeCheckpointIO
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import InjFlow, Penalty, load_method
from tests.conftest import tiny_trainer
from tests.methods.test_methods_contract import CHOICES, METHODS, build, config_id

STOP, TOTAL = 3, 7  # 4 batches per epoch: the stop is mid-epoch and the run crosses epochs


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(trainer.callback_metrics["train/loss"])


# every method, InjFlow with a growing penalty (nu = 1.3), and the other prior/constraint choices
CONFIGS = [(cls, {"constraint": lambda: Penalty(nu=1.3)} if cls is InjFlow else {})
           for cls in METHODS] + CHOICES


def run(config, tmp_path, max_steps: int, ckpt_path=None) -> tuple[dict[int, float], object]:
    L.seed_everything(0)
    cls, kwargs = config
    model = build(cls, **kwargs)
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=8)
    record = RecordLoss()
    callbacks = [record, ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=STOP,
                                         save_top_k=-1, filename="{step}")]
    trainer = tiny_trainer(tmp_path, max_steps=max_steps, enable_checkpointing=True,
                           deterministic=True, callbacks=callbacks, limit_val_batches=1,
                           plugins=[SafeCheckpointIO()])  # atomic, weights-only
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return record.losses, model


# FactorVAE and WAEGAN step their optimizers in training_step, so a checkpoint holds the state
# after the step: what an exact resume needs, as this test checks
@pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_resumed_run_matches_uninterrupted_run(config, tmp_path) -> None:
    cls = config[0]
    full, full_model = run(config, tmp_path / "full", TOTAL)
    ckpt = tmp_path / "full" / "ckpt" / f"step={STOP}.ckpt"
    assert ckpt.is_file()
    resumed, resumed_model = run(config, tmp_path / "resumed", TOTAL, ckpt_path=ckpt)
    assert type(load_method(ckpt)) is cls  # rebuilt from a weights-only read
    assert sorted(resumed) == list(range(STOP + 1, TOTAL + 1))
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-5, abs=1e-6), step
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)
