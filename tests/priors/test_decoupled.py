"""The decoupled prior: an invertible RealNVP, exact log-determinants, a normalised density."""

import math

import pytest
import torch

from genae_lightning.priors import DecoupledPrior, StandardNormal
from genae_lightning.priors.decoupled import half_masks


def trained_like(dim: int, layers: int = 4, hidden: int = 16, seed: int = 0,
                 scale: float = 0.4) -> DecoupledPrior:
    """A prior whose coupling networks have random (non-identity) weights."""
    torch.manual_seed(seed)
    prior = DecoupledPrior(dim, layers, hidden)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0.0, scale)
    return prior


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_inverse_undoes_forward_and_log_dets_cancel(dim: int) -> None:
    prior = trained_like(dim)
    z = 2.0 * torch.randn(64, dim)
    z0, logdet = prior.to_base(z)
    back, logdet_inv = prior.from_base(z0)
    torch.testing.assert_close(back, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logdet + logdet_inv, torch.zeros(64), atol=1e-5, rtol=0)
    assert logdet.abs().max() > 1e-2, "the random flow should not be volume preserving"


@pytest.mark.parametrize("dim", [2, 3])
def test_log_det_matches_autograd_jacobian(dim: int) -> None:
    prior = trained_like(dim).double()
    for z in torch.randn(5, dim, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(lambda v: prior.to_base(v[None])[0][0], z)
        expected = torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(prior.to_base(z[None])[1][0], expected)


def test_density_integrates_to_one_in_2d() -> None:
    prior = trained_like(2, seed=1, scale=0.2).double()  # its mass lies inside the grid
    assert prior.to_base(torch.ones(1, 2, dtype=torch.float64))[1].abs() > 0.1
    grid = torch.linspace(-9.0, 9.0, 451, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    z = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = prior.log_prob(z).exp().sum() * step**2
    assert abs(float(mass) - 1.0) < 1e-2


def test_samples_follow_the_density() -> None:
    """The entropy from samples' log_prob equals the change-of-variables value."""
    prior = trained_like(2, seed=2)
    with torch.no_grad():
        z = prior.sample(200_000, generator=torch.Generator().manual_seed(0))
        log_p = prior.log_prob(z)
    # E_{z~p}[log p(z)] (entropy) two ways: from the samples, and by the change of variables.
    z0 = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, logdet_inv = prior.from_base(z0)
    entropy_cov = -(StandardNormal(2).log_prob(z0) - logdet_inv).mean()
    assert abs(float(-log_p.mean() - entropy_cov)) < 1e-3


def test_untrained_prior_is_the_standard_normal() -> None:
    prior = DecoupledPrior(4)
    z = torch.randn(10, 4)
    torch.testing.assert_close(prior.log_prob(z), StandardNormal(4).log_prob(z))
    gen = torch.Generator().manual_seed(3)
    torch.testing.assert_close(prior.sample(7, gen), torch.randn(7, 4, generator=torch.Generator()
                                                                  .manual_seed(3)))


def test_sampling_is_seeded_and_differentiable_in_the_flow() -> None:
    prior = trained_like(3)
    a = prior.sample(5, torch.Generator().manual_seed(0))
    b = prior.sample(5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    a.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.parameters())


def test_half_masks_cover_both_halves_for_odd_and_two_dims() -> None:
    assert [m.tolist() for m in half_masks(2, 3)] == [[1, 0], [0, 1], [1, 0]]
    masks = half_masks(5, 2)
    assert masks[0].tolist() == [1, 1, 1, 0, 0] and (masks[0] + masks[1]).eq(1).all()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        DecoupledPrior(1)
    with pytest.raises(ValueError, match="flow_layers and flow_hidden must be >= 1"):
        DecoupledPrior(2, flow_layers=0)
    with pytest.raises(RuntimeError, match="has no latent dimension yet"):
        DecoupledPrior().sample(2)
    with pytest.raises(ValueError, match="built with dim=3, but the method's latent_dim is 4"):
        DecoupledPrior(3).bind(4)
    with pytest.raises(ValueError, match="expected latents of shape"):
        DecoupledPrior(3).log_prob(torch.zeros(2, 4))
    assert math.isclose(float(StandardNormal().bind(2).log_prob(torch.zeros(1, 2))),
                        -math.log(2 * math.pi), rel_tol=1e-6)
