"""Exact ln det(J^T J), singular values, and the InjFlow bounds (eqs. 4, 5) on it."""

import math

import pytest
import torch
from torch import nn

from genae_lightning.functional import (
    estimate_jacobian_sq_norm,
    gram_logdet,
    jacobian_matrix,
    linear_bound,
    log_bound,
    singular_values,
)

D, d = 12, 3


def random_decoder(
    seed: int, dtype: torch.dtype = torch.float64, batch_norm: bool = False
) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d, 16), nn.ELU(), nn.Linear(16, D), nn.Sigmoid(),
                               nn.Unflatten(1, (1, 3, 4))]
    if batch_norm:
        layers.insert(1, nn.BatchNorm1d(16))
    return nn.Sequential(*layers).to(dtype)


def test_linear_decoder_matches_closed_form() -> None:
    torch.manual_seed(0)
    w = torch.randn(D, d, dtype=torch.float64)
    z = torch.randn(4, d, dtype=torch.float64)
    out, jac = jacobian_matrix(lambda u: u @ w.T, z)
    torch.testing.assert_close(out, z @ w.T)
    torch.testing.assert_close(jac, w.expand(4, D, d))
    torch.testing.assert_close(gram_logdet(jac), torch.logdet(w.T @ w).expand(4))
    torch.testing.assert_close(singular_values(jac), torch.linalg.svdvals(w).expand(4, d))


@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_nonlinear_decoder_matches_per_example_autograd(chunk_size) -> None:
    fn = random_decoder(1).eval()
    z = torch.randn(5, d, dtype=torch.float64)
    out, jac = jacobian_matrix(fn, z, chunk_size)
    reference = torch.stack([torch.autograd.functional.jacobian(lambda u: fn(u[None])[0], zi)
                             for zi in z]).flatten(1, 3)  # (B, D, d)
    torch.testing.assert_close(out, fn(z))
    torch.testing.assert_close(jac, reference)
    # ln det J^T J = 2 sum_i ln s_i
    torch.testing.assert_close(gram_logdet(jac), 2 * singular_values(jac).log().sum(1))


def test_works_under_inference_mode_and_is_float32_for_float32_latents() -> None:
    fn = random_decoder(2, torch.float32).eval()
    with torch.inference_mode():
        z = torch.randn(3, d)
        _, jac = jacobian_matrix(fn, z)
    assert jac.dtype == torch.float32 and jac.abs().sum() > 0  # forward AD is not switched off


def test_batchnorm_in_train_mode_is_refused() -> None:
    fn = random_decoder(3, batch_norm=True)
    with pytest.raises(ValueError, match="BatchNorm layers in train mode"):
        jacobian_matrix(fn, torch.randn(4, d, dtype=torch.float64))
    jacobian_matrix(fn.eval(), torch.randn(4, d, dtype=torch.float64))  # eval mode is fine


def test_bad_shapes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"shape \(batch, latent_dim\)"):
        jacobian_matrix(lambda u: u, torch.randn(3))
    with pytest.raises(ValueError, match="chunk_size"):
        jacobian_matrix(lambda u: u, torch.randn(3, 2), chunk_size=0)
    with pytest.raises(ValueError, match="D >= d"):
        gram_logdet(torch.randn(2, 2, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        log_bound(torch.tensor(1.0), 0)
    with pytest.raises(ValueError, match="lambda"):
        linear_bound(torch.tensor(1.0), 2, lam=0.0)


def test_singular_gram_gives_minus_infinity() -> None:
    jac = torch.zeros(1, D, d, dtype=torch.float64)
    jac[0, 0, 0] = 1.0
    assert gram_logdet(jac).item() == -math.inf


@pytest.mark.parametrize("seed", range(5))
def test_bounds_lie_above_the_exact_half_logdet_on_random_decoders(seed) -> None:
    fn = random_decoder(seed).eval()
    z = 2 * torch.randn(16, d, dtype=torch.float64)
    _, jac = jacobian_matrix(fn, z)
    exact = 0.5 * gram_logdet(jac)
    fro_sq = jac.pow(2).sum((1, 2))
    log = log_bound(fro_sq, d)
    assert (log >= exact - 1e-10).all()  # eq. (5)
    for lam in (0.01, 0.1, 1.0, 10.0):
        linear = linear_bound(fro_sq, d, lam)
        assert (linear >= exact - 1e-10).all()  # eq. (4)
        assert (linear >= log - 1e-10).all()  # (5) is the best of (4) over lambda
    torch.testing.assert_close(linear_bound(fro_sq, d, fro_sq / d), log)  # ... reached here


def test_bounds_are_tight_when_all_singular_values_are_equal() -> None:
    q, _ = torch.linalg.qr(torch.randn(D, d, dtype=torch.float64))
    jac = (0.3 * q).expand(2, D, d)  # s_i = 0.3 for all i
    exact = 0.5 * gram_logdet(jac)
    fro_sq = jac.pow(2).sum((1, 2))
    torch.testing.assert_close(exact, torch.full((2,), d * math.log(0.3), dtype=torch.float64))
    torch.testing.assert_close(log_bound(fro_sq, d), exact)
    torch.testing.assert_close(linear_bound(fro_sq, d, lam=0.09), exact)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_one_sample_estimator_is_unbiased_for_the_frobenius_form(mode) -> None:
    fn = random_decoder(7, torch.float32).eval()
    z = torch.randn(1, d)
    _, jac = jacobian_matrix(fn, z)
    fro_sq = jac.double().pow(2).sum()
    draws = 40_000
    est = estimate_jacobian_sq_norm(fn, z.repeat(draws, 1), mode,
                                    generator=torch.Generator().manual_seed(0))
    sq = est.sq_norm.detach().double()
    stderr = sq.std() / math.sqrt(draws)
    assert abs(sq.mean() - fro_sq) < 4 * stderr  # E||J v||^2 = ||J||_F^2
    # so the linear bound's estimate is unbiased too (it is linear in ||J v||^2) ...
    linear = linear_bound(sq, d, 1.0)
    assert abs(linear.mean() - linear_bound(fro_sq, d, 1.0)) < 4 * stderr / 2
    # ... while the log bound's is biased low (Jensen): not a bound in expectation
    assert log_bound(sq, d).mean() < log_bound(fro_sq, d) - 0.1
