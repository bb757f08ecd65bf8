"""InjFlowDiagnostics: exact values on a linear decoder, a training run, isolation, errors."""

import math

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from PIL import Image

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import InjFlowDiagnostics
from genae_lightning.callbacks.injflow_diagnostics import injflow_diagnostics
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, InjFlow
from tests.conftest import tiny_trainer
from tests.methods.test_injflow import SHAPE, LinearBackbone, d


class RecordingLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.images: list[tuple[int, str, Image.Image]] = []

    name = "recording"  # type: ignore[assignment]
    version = 0  # type: ignore[assignment]

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        self.hyperparams = params  # required by Logger; the tests do not read it

    def log_image(self, key, images, step=None) -> None:  # what W&B's logger offers
        self.images += [(step, key, image) for image in images]


def test_linear_decoder_values_match_the_closed_form() -> None:
    torch.manual_seed(0)
    model = InjFlow(image_shape=SHAPE, latent_dim=d, backbone=LinearBackbone(), lam=2.0, eta=0.1)
    w = model.decoder[0].weight.double()  # (D, d): J_g = W everywhere
    x = torch.rand(5, *SHAPE)
    model.train()
    state = torch.random.get_rng_state()
    diag = injflow_diagnostics(model, x, probes=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert model.training  # mode restored
    m = diag.metrics
    exact = 0.5 * torch.logdet(w.T @ w).item()
    fro_sq = w.pow(2).sum().item()
    assert m["diag/logdet_exact"] == pytest.approx(exact)
    assert m["diag/bound_log"] == pytest.approx(d / 2 * math.log(fro_sq / d))
    assert m["diag/bound_linear"] == pytest.approx(fro_sq / 4 + d / 2 * (math.log(2.0) - 1))
    assert m["diag/gap_log"] == pytest.approx(m["diag/bound_log"] - exact)
    assert m["diag/gap_log"] >= 0 and m["diag/gap_linear"] >= m["diag/gap_log"]
    sv = torch.linalg.svdvals(w)
    torch.testing.assert_close(diag.singular_values, sv.expand(5, d))
    assert m["diag/sv_max"] == pytest.approx(sv[0].item())
    assert m["diag/sv_min"] == pytest.approx(sv[-1].item())
    assert m["diag/condition"] == pytest.approx((sv[0] / sv[-1]).item())
    assert m["diag/frac_sv_below_eta"] == (sv < 0.1).double().mean().item()
    with torch.no_grad():
        rec = (model.reconstruct(x) - x).pow(2).flatten(1).sum(1).mean().item()
    assert m["diag/constraint"] == pytest.approx(rec, rel=1e-5)
    # the estimator versions: the loss's Jacobian term plus its dropped constant
    assert math.isfinite(m["diag/bound_log_est"]) and math.isfinite(m["diag/gap_linear_est"])


def test_callback_logs_on_schedule_writes_the_plot_and_leaves_training_alone(tmp_path) -> None:
    def fit(callbacks, logger=False):
        torch.manual_seed(0)
        model = InjFlow(image_shape=(1, 8, 8), latent_dim=3,
                        backbone=MLPBackbone(hidden=[16], batch_norm=True))
        data = SyntheticImages(image_shape=(1, 8, 8), num_samples=32, batch_size=8)
        trainer = tiny_trainer(tmp_path, max_steps=5, callbacks=callbacks, logger=logger)
        trainer.fit(model, datamodule=data)
        return model

    diagnostics = InjFlowDiagnostics(every_n_steps=2, num_examples=6, save_dir=str(tmp_path))
    logger = RecordingLogger()
    with_diag = fit([diagnostics], logger)
    without = fit([])
    for a, b in zip(with_diag.state_dict().values(), without.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # same weights, BatchNorm statistics and buffers

    assert [h["step"] for h in diagnostics.history] == [0, 2, 4, 5]
    logged = [(step, m) for step, m in logger.metrics if "diag/logdet_exact" in m]
    assert [step for step, _ in logged] == [0, 2, 4, 5]
    assert {"diag/gap_log", "diag/gap_log_est", "diag/condition", "diag/constraint"} <= set(
        logged[-1][1])
    assert all(m["diag/gap_log"] >= 0 and m["diag/gap_linear"] >= 0 for _, m in logged)
    assert (tmp_path / "injflow_spectrum.png").is_file()
    assert [(step, key) for step, key, _ in logger.images] == [
        (step, "diag/spectrum") for step in (0, 2, 4, 5)]  # the plot goes to W&B each time
    pixels = np.asarray(logger.images[-1][2])  # 8-bit pixels, not floats W&B would zero
    assert pixels.dtype == np.uint8 and pixels.shape[-1] == 3 and pixels.max() > 1
    saved = np.asarray(Image.open(tmp_path / "injflow_spectrum.png").convert("RGB"))
    np.testing.assert_array_equal(pixels, saved)

    restored = InjFlowDiagnostics()
    restored.load_state_dict(diagnostics.state_dict())
    assert restored.history == diagnostics.history


def test_refuses_other_methods_and_large_latents(tmp_path) -> None:
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=16, batch_size=8)
    ae = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    with pytest.raises(ValueError, match="measures InjFlow"):
        tiny_trainer(tmp_path, callbacks=[InjFlowDiagnostics()]).fit(ae, datamodule=data)
    flow = InjFlow(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    with pytest.raises(ValueError, match="max_latent_dim"):
        tiny_trainer(tmp_path, callbacks=[InjFlowDiagnostics(max_latent_dim=2)]).fit(
            flow, datamodule=data)
    with pytest.raises(ValueError, match="every_n_steps"):
        InjFlowDiagnostics(every_n_steps=0)
