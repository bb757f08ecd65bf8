"""NonFiniteGuard holds the non-finite policy; a module only reports its terms."""

import pytest
import torch

from genae_lightning.autoencoder.nonfinite import NonFiniteLossError, stop_if_nonfinite
from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import NonFiniteGuard
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE
from tests.conftest import tiny_trainer


class Spy(AE):
    reported: list[tuple[str, ...]] = []

    def training_step(self, batch, batch_idx):
        handler = self.nonfinite_handler
        self.nonfinite_handler = lambda m, values: (self.reported.append(tuple(values)),
                                                    handler(m, values))[1]
        try:
            return super().training_step(batch, batch_idx)
        finally:
            self.nonfinite_handler = handler


def test_module_reports_every_term_to_the_guard_it_was_given(tmp_path) -> None:
    torch.manual_seed(0)
    model = Spy(image_shape=(1, 4, 4), latent_dim=2, backbone=MLPBackbone(hidden=[8]))
    model.reported = []
    assert model.nonfinite_handler is stop_if_nonfinite  # no guard: the default stop
    trainer = tiny_trainer(tmp_path, max_steps=2, callbacks=[NonFiniteGuard()])
    trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 4, 4), num_samples=16,
                                                  batch_size=4))
    assert model.reported == [("loss", "rec")] * 2
    assert model.nonfinite_handler is stop_if_nonfinite  # given back after the run


def test_the_default_stop_names_the_term_and_step() -> None:
    model = AE(image_shape=(1, 4, 4), latent_dim=2, backbone=MLPBackbone(hidden=[8]))
    finite = {"loss": torch.tensor(1.0), "rec": torch.tensor(1.0)}
    assert stop_if_nonfinite(model, finite)
    with pytest.raises(NonFiniteLossError, match=r"AE: non-finite rec at step 0\. No checkpoint"):
        stop_if_nonfinite(model, {"loss": torch.tensor(1.0), "rec": torch.tensor(float("inf"))})
