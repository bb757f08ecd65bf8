"""Post-hoc Gaussian and GMM: fit, log_prob, sample, and the round trip through a checkpoint."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, load_method
from genae_lightning.priors import FullCovGaussian, GaussianMixture, StandardNormal
from tests.conftest import tiny_trainer


def test_full_gaussian_fit_recovers_mean_and_covariance() -> None:
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]])
    z = torch.randn(20000, 2, generator=gen) @ torch.linalg.cholesky(cov).T + torch.tensor(
        [1.0, -2.0]
    )
    prior = FullCovGaussian.fit(z)
    torch.testing.assert_close(prior.mean, torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(prior.cov, cov, atol=0.06, rtol=0)
    exact = torch.distributions.MultivariateNormal(prior.mean, prior.cov).log_prob(z[:5])
    torch.testing.assert_close(prior.log_prob(z[:5]), exact)
    assert prior.sample(7, generator=gen).shape == (7, 2)


def test_gmm_fit_separated_clusters_and_sample() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    z = torch.cat([c + 0.3 * torch.randn(300, 2, generator=gen) for c in centres])
    gmm = GaussianMixture.fit(z, n_components=3, seed=0)
    assert gmm.n_components == 3
    found = gmm.means[torch.argsort(gmm.means[:, 0] + 10 * gmm.means[:, 1])]
    want = centres[torch.argsort(centres[:, 0] + 10 * centres[:, 1])]
    torch.testing.assert_close(found, want, atol=0.1, rtol=0)
    torch.testing.assert_close(gmm.weights.sum(), torch.tensor(1.0))
    samples = gmm.sample(3000, generator=gen)
    assert samples.shape == (3000, 2)
    # every sample lies near one of the centres
    assert torch.cdist(samples, centres).min(dim=1).values.max() < 2.0
    # log_prob is the mixture density: matches an explicit sum over components
    comps = torch.distributions.MultivariateNormal(gmm.means, scale_tril=gmm.scale_trils)
    explicit = torch.logsumexp(comps.log_prob(z[:4, None, :]) + gmm.weights.log(), dim=1)
    torch.testing.assert_close(gmm.log_prob(z[:4]), explicit)


def test_standard_normal_log_prob() -> None:
    prior = StandardNormal(3)
    z = torch.randn(4, 3)
    torch.testing.assert_close(
        prior.log_prob(z), torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    )
    with pytest.raises(ValueError, match="shape \\(batch, 3\\)"):
        prior.log_prob(torch.randn(4, 2))


def test_gmm_needs_enough_points() -> None:
    with pytest.raises(ValueError, match="n_components=10"):
        GaussianMixture.fit(torch.randn(5, 2), n_components=10)


def test_fitted_priors_survive_a_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[16]))
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=60, batch_size=6)
    with pytest.raises(RuntimeError, match="has not been fitted"):
        model.sample(2, prior="gmm")
    trainer = tiny_trainer(tmp_path, max_steps=3, callbacks=[FitLatentPrior(n_components=4)])
    trainer.fit(model, datamodule=data)
    assert set(model.posthoc_priors) == {"gaussian", "gmm"}
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)

    reloaded = load_method(ckpt)
    for name in ("gaussian", "gmm"):
        z = torch.randn(5, 3)
        torch.testing.assert_close(
            reloaded.get_prior(name).log_prob(z), model.get_prior(name).log_prob(z)
        )
        a = model.sample(4, prior=name, generator=torch.Generator().manual_seed(1))
        b = reloaded.sample(4, prior=name, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(a, b)
