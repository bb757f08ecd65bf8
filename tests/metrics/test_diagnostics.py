"""Submanifold diagnostics: q(z), sKL, importance-sampled NLL, LP/HP latents, leakage, LP-FID."""

import json
import math

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from genae_lightning.backbones import MLPBackbone
from genae_lightning.functional import gaussian_nll
from genae_lightning.latents.aggregate import AggregatePosterior, aggregate_posterior
from genae_lightning.methods import AE, VAE
from genae_lightning.metrics import FID
from genae_lightning.metrics.diagnostics import (
    DiagnosticsConfig,
    dataset_nll,
    default_thresholds,
    generation_log_prob,
    high_posterior_latents,
    importance_log_likelihood,
    leakage_scores,
    low_posterior_latents,
    submanifold_metrics,
    symmetric_kl,
)
from genae_lightning.plots import plot_leakage
from genae_lightning.priors import DecoupledPrior, StandardNormal

SHAPE = (1, 8, 8)


def tiny_dpvae() -> VAE:
    torch.manual_seed(0)
    return VAE(image_shape=SHAPE, latent_dim=2, prior=DecoupledPrior(flow_layers=2, flow_hidden=8),
               backbone=MLPBackbone(hidden=[16]))


def loader(n: int = 40, batch_size: int = 16) -> DataLoader:
    x = torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(1))
    return DataLoader(TensorDataset(x, torch.zeros(n, dtype=torch.long)), batch_size=batch_size)


def test_aggregate_posterior_is_the_normalised_mixture() -> None:
    means, logvars = torch.tensor([[-2.0], [1.0], [3.0]]), torch.tensor([[0.0], [-1.0], [0.5]])
    q = AggregatePosterior(means, logvars, chunk=7)
    grid = torch.linspace(-12, 14, 5001)[:, None]
    mass = q.log_prob(grid).exp().sum() * (grid[1] - grid[0])
    assert abs(float(mass) - 1.0) < 1e-3
    s = q.sample(200_000, torch.Generator().manual_seed(0))
    expected_var = (logvars.exp() + means**2).mean() - means.mean() ** 2
    assert abs(float(s.mean() - means.mean())) < 0.02
    assert abs(float(s.var() - expected_var)) < 0.05


def test_aggregate_posterior_from_a_model_and_loader() -> None:
    model = tiny_dpvae()
    q = aggregate_posterior(model, loader(40), max_points=20)
    assert q.n_components == 20 and q.dim == 2
    mean, logvar = model.posterior(next(iter(loader(40)))[0])
    torch.testing.assert_close(q.means[:16], mean.detach())
    with pytest.raises(TypeError, match="posterior"):
        aggregate_posterior(AE(image_shape=SHAPE, latent_dim=2, backbone=MLPBackbone([8])),
                            loader())


def test_symmetric_kl_of_two_gaussians() -> None:
    p = StandardNormal(1)
    same = AggregatePosterior(torch.zeros(1, 1), torch.zeros(1, 1))
    assert symmetric_kl(p, same, 1000)["skl"] == pytest.approx(0.0, abs=1e-6)
    shifted = AggregatePosterior(torch.ones(1, 1), torch.zeros(1, 1))  # KL = 0.5 each way
    out = symmetric_kl(p, shifted, 200_000, torch.Generator().manual_seed(0))
    assert out["kl_pq"] == pytest.approx(0.5, abs=0.02)
    assert out["skl"] == pytest.approx(1.0, abs=0.03)


class LinearGaussian(nn.Module):
    """p(z) = N(0, I_2), p(x|z) = N(W z + b, s^2 I_3); q(z|x) a fixed, slightly wrong Gaussian."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3, 2, generator=gen, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
        self.sigma = 0.5
        self.prior = StandardNormal(2)

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.w.T + self.b

    def log_likelihood(self, x: Tensor, x_hat: Tensor) -> Tensor:
        return -gaussian_nll(x, x_hat, self.sigma)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # exact posterior: N(A^-1 W^T (x - b) / s^2, A^-1), A = I + W^T W / s^2; use its mean and
        # a 1.5x wider diagonal variance, so the weights are not constant
        a = torch.eye(2, dtype=x.dtype) + self.w.T @ self.w / self.sigma**2
        cov = torch.linalg.inv(a)
        mean = (x - self.b) @ self.w @ cov.T / self.sigma**2
        return mean, (1.5 * cov.diagonal()).log().expand_as(mean)

    def exact_log_marginal(self, x: Tensor) -> Tensor:
        cov = self.w @ self.w.T + self.sigma**2 * torch.eye(3, dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)


def test_importance_sampled_nll_matches_the_linear_gaussian_marginal() -> None:
    model = LinearGaussian()
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    est = importance_log_likelihood(model, x, k=20_000, chunk=5000,
                                    generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(est, model.exact_log_marginal(x).detach(), atol=0.01, rtol=0)
    nll = dataset_nll(model, DataLoader(TensorDataset(x), batch_size=2), k=2000, max_examples=3)
    assert nll == pytest.approx(float(-model.exact_log_marginal(x[:3]).detach().mean()), abs=0.02)
    with pytest.raises(ValueError, match="k"):
        importance_log_likelihood(model, x, k=0)


def test_low_and_high_posterior_latents_are_the_extremes() -> None:
    prior = StandardNormal(2)
    q = AggregatePosterior(torch.tensor([[3.0, 0.0]]), torch.full((1, 2), -2.0))
    gen = torch.Generator().manual_seed(0)
    lp = low_posterior_latents(prior, q, 10, 1000, gen)
    assert lp.shape == (10, 2) and float(lp[:, 0].mean()) < -1.0  # far from q's mode at x=3
    hp = high_posterior_latents(prior, q, 10, 1000, gen)
    assert float(hp[:, 0].mean()) > 3.0  # q's tail furthest from the prior
    with pytest.raises(ValueError, match="n_candidates"):
        low_posterior_latents(prior, q, 10, 5)


def test_leakage_score_follows_equation_6() -> None:
    prior = StandardNormal(1)
    q = AggregatePosterior(torch.tensor([[4.0]]), torch.zeros(1, 1))
    gen = torch.Generator().manual_seed(0)
    z = q.sample(2000, torch.Generator().manual_seed(0))
    taus = [-100.0, -5.0, 0.0]
    ls = leakage_scores(prior, q, taus, 2000, gen)
    assert math.isnan(ls[0])  # no sample that unlikely: "missing value" in the paper's plot
    log_p = prior.log_prob(z)
    expected = ((q.log_prob(z) - log_p) * (log_p < -5.0)).mean()
    torch.testing.assert_close(ls[1], expected)
    assert ls[2] > ls[1] > 0
    assert default_thresholds(2, [1.0])[0] == pytest.approx(-math.log(2 * math.pi) - 1.0)


def test_decoupled_leakage_uses_the_generation_space_density() -> None:
    prior = DecoupledPrior(2, flow_layers=2, flow_hidden=4)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.3)
    z = torch.randn(6, 2)
    z0, _ = prior.to_base(z)
    torch.testing.assert_close(generation_log_prob(prior, z), StandardNormal(2).log_prob(z0))


def test_plot_leakage_writes_a_png(tmp_path) -> None:
    path = plot_leakage({"VAE": ([-3.0, -2.0], torch.tensor([float("nan"), 0.5])),
                         "dpVAE": ([-3.0, -2.0], torch.tensor([0.1, 0.2]))}, tmp_path / "ls.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_submanifold_metrics_end_to_end(tiny_features) -> None:
    model = tiny_dpvae()
    fid = FID(tiny_features, disk_cache=False, input_img_size=(3, 8, 8), progress=False)
    fid.set_real(x for x, _ in loader(64))
    config = DiagnosticsConfig(q_points=30, skl_samples=200, nll_k=20, nll_examples=8,
                               lp_samples=32, thresholds=[-4.0, -2.0])
    metrics = submanifold_metrics(model, loader(40), loader(16), fid, config)
    assert set(metrics) == {"skl", "nll", "leakage/-4.0", "leakage/-2.0",
                            f"{fid.prefix}/low_posterior"}
    assert fid.prefix.startswith("fid_tinyfeatures-")  # a custom module: its own FID keys
    assert all(math.isfinite(v) for k, v in metrics.items() if not k.startswith("leakage"))
    assert model.training, "the model's mode is restored"


def test_genae_evaluate_submanifold_option(tmp_path) -> None:
    from genae_lightning.cli import main
    from genae_lightning.data import Digits
    from tests.conftest import tiny_trainer

    torch.manual_seed(0)
    model = VAE(image_shape=Digits.IMAGE_SHAPE, latent_dim=2,
                prior=DecoupledPrior(flow_layers=2, flow_hidden=8),
                backbone=MLPBackbone(hidden=[16]))
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=Digits(batch_size=32))
    trainer.save_checkpoint(tmp_path / "dp.ckpt")
    out = tmp_path / "eval.json"
    main(["evaluate", "--ckpt_path", str(tmp_path / "dp.ckpt"), "--data", "Digits", "--no_fid",
          "true", "--submanifold", "true", "--nll_k", "4", "--num_samples", "32",
          "--knn_train_samples", "64", "--progress", "false", "--out", str(out)])
    metrics = json.loads(out.read_text())["metrics"]
    assert {"skl", "nll", "knn/acc"} <= set(metrics)
    assert any(k.startswith("leakage/") for k in metrics)
