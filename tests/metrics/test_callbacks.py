"""GenerativeMetrics and ImageLogger inside a (tiny) training run."""

import csv
import urllib.error

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior, GenerativeMetrics, ImageLogger
from genae_lightning.data import Digits
from genae_lightning.methods import AE
from genae_lightning.metrics.fid import split_fid_key
from tests.conftest import tiny_trainer

from .conftest import TINY_FID, TinyFeatures

KEYS = {f"{TINY_FID}/{kind}" for kind in ("recon", "prior", "gaussian", "gmm")} | {
    "knn/acc", "val/rec_sse"}


def model() -> AE:
    torch.manual_seed(0)
    return AE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]))


def metrics_callback(tmp_path, **kwargs) -> GenerativeMetrics:
    options = dict(every_n_epochs=1, num_samples=32, knn_train_samples=100, batch_size=32,
                   n_components=2, fid_feature=TinyFeatures(), cache_dir=str(tmp_path / "cache"),
                   progress=False)
    return GenerativeMetrics(**(options | kwargs))


def fit(tmp_path, callbacks, **kwargs):
    trainer = tiny_trainer(tmp_path, max_steps=-1, max_epochs=2, limit_train_batches=2,
                           callbacks=callbacks, logger=CSVLogger(tmp_path, name="run"), **kwargs)
    trainer.fit(model(), datamodule=Digits(batch_size=32))
    return trainer


def logged_rows(trainer) -> list[dict[str, str]]:
    with open(f"{trainer.logger.log_dir}/metrics.csv", newline="") as file:
        return [row for row in csv.DictReader(file) if row.get(f"{TINY_FID}/recon")]


def test_metrics_every_epoch_and_at_the_end_with_grids(tmp_path) -> None:
    images = ImageLogger(n=8, nrow=4, every_n_epochs=1)
    metrics = metrics_callback(tmp_path)
    trainer = fit(tmp_path, [FitLatentPrior(n_components=2), metrics, images])
    rows = logged_rows(trainer)
    assert len(rows) == 2  # after epoch 0 (periodic) and at the end of fit (not twice at the end)
    assert KEYS <= set(rows[0]) and all(rows[-1][k] for k in KEYS)
    assert set(trainer.callback_metrics) >= KEYS
    assert metrics.latest_priors == {}  # at the end FitLatentPrior's priors were used
    out = tmp_path / "run" / "version_0"
    for name in ("recon", "samples_standard", "samples_gaussian", "samples_gmm"):
        assert (out / f"{name}.png").is_file(), name
        # mid-training, grids of the temporary post-hoc priors of GenerativeMetrics too
        assert (out / "images" / f"{name}_epoch=0.png").is_file(), name


def test_missing_inception_weights_switch_fid_off_with_a_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.warns(UserWarning, match="FID is switched off.*genae train-features"):
        trainer = fit(tmp_path, [metrics_callback(tmp_path, fid_feature="inception",
                                                  every_n_epochs=None)])
    assert {"knn/acc", "val/rec_sse"} <= set(trainer.callback_metrics)
    assert not [k for k in trainer.callback_metrics if split_fid_key(k)]  # no FID of any kind
    with pytest.raises(FileNotFoundError, match="Inception-v3 weights are not available"):
        fit(tmp_path, [metrics_callback(tmp_path, fid_feature="inception", strict=True)])


def test_the_feature_argument_is_a_deprecated_name_of_fid_feature() -> None:
    with pytest.deprecated_call(match=r"GenerativeMetrics\(feature=...\) is deprecated"):
        metrics = GenerativeMetrics(feature="features/mnist_classifier.pt")
    assert metrics.fid_feature == "features/mnist_classifier.pt"
