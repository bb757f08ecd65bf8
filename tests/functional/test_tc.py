"""KL to any prior, its MI/TC/dimension-wise split (beta-TCVAE), and FactorVAE's permutation."""

import math

import pytest
import torch

from genae_lightning.functional import (
    diag_gaussian_log_prob,
    diag_gaussian_mixture_log_prob,
    gaussian_kl_standard,
    reparameterize,
)
from genae_lightning.functional.tc import (
    aggregate_log_densities,
    gaussian_kl_mc,
    kl_decomposition,
    permute_dims,
    stratified_log_weights,
)
from genae_lightning.priors import StandardNormal


def posteriors(b: int = 8, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=gen), 0.5 * torch.randn(b, d, generator=gen) - 0.5


def test_mc_kl_with_standard_prior_matches_closed_form_in_expectation() -> None:
    mean, logvar = posteriors(4, 3)
    reps = 200_000
    m, lv = mean.repeat(reps, 1), logvar.repeat(reps, 1)
    z = reparameterize(m, lv, generator=torch.Generator().manual_seed(1))
    est = gaussian_kl_mc(z, m, lv, StandardNormal(3).log_prob(z)).view(reps, 4).mean(0)
    torch.testing.assert_close(est, gaussian_kl_standard(mean, logvar), atol=0.02, rtol=0.01)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_decomposition_sums_to_the_kl_estimate(estimator: str) -> None:
    mean, logvar = posteriors()
    z = reparameterize(mean, logvar, generator=torch.Generator().manual_seed(2))
    log_pz = StandardNormal(3).log_prob(z)
    parts = kl_decomposition(z, mean, logvar, log_pz, dataset_size=1000, estimator=estimator)
    torch.testing.assert_close(parts.mi + parts.tc + parts.dim_kl,
                               gaussian_kl_mc(z, mean, logvar, log_pz), atol=1e-5, rtol=1e-5)
    # any prior: only the last term changes
    other = diag_gaussian_log_prob(z, torch.ones(3), torch.zeros(3))
    parts2 = kl_decomposition(z, mean, logvar, other, dataset_size=1000, estimator=estimator)
    torch.testing.assert_close(parts2.tc, parts.tc)
    torch.testing.assert_close(parts2.dim_kl - parts.dim_kl, log_pz - other)


def test_decomposition_in_expectation_is_the_closed_form_kl() -> None:
    mean, logvar = posteriors(16, 2, seed=3)
    total = torch.zeros(())
    reps = 2000
    gen = torch.Generator().manual_seed(4)
    for _ in range(reps):
        z = reparameterize(mean, logvar, generator=gen)
        total += sum(kl_decomposition(z, mean, logvar, StandardNormal(2).log_prob(z), 16)).mean()
    assert abs(float(total / reps - gaussian_kl_standard(mean, logvar).mean())) < 0.05


def test_mws_on_the_whole_dataset_is_the_mixture_density_over_n() -> None:
    """With the batch = the data set, MWS gives log q(z) - log N (Chen et al.'s weighting)."""
    mean, logvar = posteriors(10, 2)
    z = torch.randn(10, 2)
    log_qz, log_prod = aggregate_log_densities(z, mean, logvar, dataset_size=10)
    exact = diag_gaussian_mixture_log_prob(z, mean, logvar)
    torch.testing.assert_close(log_qz + math.log(10), exact)
    marginals = sum(diag_gaussian_mixture_log_prob(z[:, [k]], mean[:, [k]], logvar[:, [k]])
                    for k in range(2))
    torch.testing.assert_close(log_prod + 2 * math.log(10), marginals)


def test_stratified_weights_rows_sum_to_one() -> None:
    w = stratified_log_weights(6, 100).exp()
    torch.testing.assert_close(w.sum(1), torch.ones(6))
    assert torch.allclose(w.diagonal(), torch.full((6,), 0.01))


def test_estimators_reject_bad_sizes() -> None:
    mean, logvar = posteriors(4, 2)
    with pytest.raises(ValueError, match="dataset_size"):
        aggregate_log_densities(mean, mean, logvar, dataset_size=2)
    with pytest.raises(ValueError, match="'mws' or 'mss'"):
        aggregate_log_densities(mean, mean, logvar, dataset_size=10, estimator="x")  # type: ignore


def test_permute_dims_keeps_marginals_and_breaks_dependence() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5000, 1, generator=gen)
    z = torch.cat([x, x], dim=1)  # perfectly correlated
    p = permute_dims(z, gen)
    for k in range(2):
        torch.testing.assert_close(p[:, k].sort().values, z[:, k].sort().values)
    assert abs(float(torch.corrcoef(p.T)[0, 1])) < 0.05
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        permute_dims(torch.zeros(3))
