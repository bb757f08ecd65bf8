"""Adversarial methods step through Lightning's public API, counting iterations only."""

import lightning as L
import torch
from lightning.pytorch.loops.optimization.manual import _ManualOptimization

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import WAEGAN, FactorVAE
from tests.conftest import tiny_trainer


class Recorder(L.Callback):
    def __init__(self) -> None:
        self.stepped: list[int] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.stepped.append(id(optimizer))


def recording(cls):
    class Recording(cls):
        hooks: list = []

        def training_step(self, batch, batch_idx):
            total = super().training_step(batch, batch_idx)
            # right after the step, before Lightning resets them at the end of the batch
            self.hooks += [(opt._on_before_step, opt._on_after_step) for opt in self.optimizers()]
            return total

    return Recording


def test_discriminator_step_leaves_lightning_optimizer_hooks_alone(tmp_path) -> None:
    for cls, kw in ((WAEGAN, {}), (FactorVAE, {})):
        torch.manual_seed(0)
        model = recording(cls)(image_shape=(1, 4, 4), latent_dim=2,
                               discriminator_hidden=(8,), backbone=MLPBackbone(hidden=[8]), **kw)
        model.hooks = []
        disc_before = [p.detach().clone() for p in model.discriminator.parameters()]
        recorder = Recorder()
        trainer = tiny_trainer(tmp_path, max_steps=3, callbacks=[recorder])
        trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 4, 4), num_samples=24,
                                                      batch_size=4))
        assert trainer.global_step == 3  # iterations, not optimizer steps
        assert len(model.hooks) == 6
        for before, after in model.hooks:  # Lightning's own, never replaced by the method
            assert isinstance(before.__self__, _ManualOptimization), before
            assert isinstance(after.__self__, _ManualOptimization), after
        assert len(recorder.stepped) == 6 and len(set(recorder.stepped)) == 2  # both, each step
        assert any(not torch.equal(p, q)
                   for p, q in zip(model.discriminator.parameters(), disc_before, strict=True))
