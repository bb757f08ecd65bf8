import math

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import Digits
from genae_lightning.latents import posthoc_priors
from genae_lightning.methods import AE
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative
from genae_lightning.priors import FullCovGaussian, GaussianMixture

from .conftest import TINY_FID, TinyFeatures


@pytest.fixture
def digits() -> Digits:
    data = Digits(batch_size=32)
    data.setup()
    return data


@pytest.fixture
def model() -> AE:
    torch.manual_seed(0)
    return AE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]))


CONFIG = MetricsConfig(num_samples=64, knn_train_samples=200, batch_size=32, progress=False)


def test_every_metric_is_computed(model, digits, tmp_path) -> None:
    features = TinyFeatures()
    fid = FID(features, cache_dir=tmp_path, progress=False)
    result = evaluate_generative(model, digits.train_dataset, digits.test_dataset, fid, CONFIG,
                                 dataset_name="Digits")
    expected = {f"{TINY_FID}/{kind}" for kind in ("recon", "prior", "gaussian", "gmm")} | {
        "knn/acc", "val/rec_sse"}
    assert set(result.metrics) == expected
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert 0 <= result.metrics["knn/acc"] <= 1 and result.num_images == 64
    assert set(result.fitted_priors) == {"gaussian", "gmm"}  # the model had none fitted
    x = torch.stack([digits.test_dataset[i][0] for i in range(64)])
    with torch.no_grad():
        sse = (model.reconstruct(x) - x).pow(2).flatten(1).sum(1).mean()
    assert result.metrics["val/rec_sse"] == pytest.approx(float(sse), rel=1e-5)
    assert model.training  # the train/eval mode is restored


def test_cached_real_statistics_skip_the_real_images(model, digits, tmp_path) -> None:
    features = TinyFeatures()
    fid = FID(features, cache_dir=tmp_path, progress=False)
    args = (model, digits.train_dataset, digits.test_dataset, fid, CONFIG)
    evaluate_generative(*args)
    first = features.calls  # real + recon + 3 samplers, 2 batches each
    assert first == 10
    evaluate_generative(*args)
    assert features.calls - first == 8  # the real features come from the cache


def test_without_fid_only_knn_and_sse(model, digits) -> None:
    result = evaluate_generative(model, digits.train_dataset, digits.test_dataset, None, CONFIG)
    assert set(result.metrics) == {"knn/acc", "val/rec_sse"} and not result.fitted_priors


def test_fitted_module_priors_are_used(model, digits) -> None:
    z = torch.randn(100, 4)
    model.set_posthoc_prior("gaussian", FullCovGaussian.fit(z))
    fitted = posthoc_priors(model, z, ("prior", "gaussian", "gmm"), n_components=2)
    assert set(fitted) == {"gmm"}


def test_fit_gmm_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-5.0, 0.0], [5.0, 0.0]])
    z = means[torch.arange(400) % 2] + 0.3 * torch.randn(400, 2, generator=g)
    gmm = GaussianMixture.fit(z, n_components=2)
    found = gmm.means[gmm.means[:, 0].argsort()]
    assert torch.allclose(found, means, atol=0.1)
    assert torch.allclose(gmm.weights, torch.tensor([0.5, 0.5]), atol=0.02)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'vamp'"):
        MetricsConfig(samplers=("vamp",))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        MetricsConfig(num_samples=1)
