"""Diagonal Gaussian and mixture log-densities against torch.distributions and explicit loops."""

import math

import pytest
import torch

from genae_lightning.functional import diag_gaussian_log_prob, diag_gaussian_mixture_log_prob


def test_diag_gaussian_log_prob_matches_torch_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    z, mean, logvar = (torch.randn(5, 3, generator=gen, dtype=torch.double) for _ in range(3))
    expected = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(1)
    torch.testing.assert_close(diag_gaussian_log_prob(z, mean, logvar), expected)


def test_mixture_log_prob_matches_an_explicit_loop() -> None:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, 2, generator=gen, dtype=torch.double)
    means = torch.randn(4, 2, generator=gen, dtype=torch.double)
    logvars = torch.randn(4, 2, generator=gen, dtype=torch.double) * 0.3
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.double)
    for log_w, w in ((None, torch.full((4,), 0.25, dtype=torch.double)), (weights.log(), weights)):
        expected = torch.tensor([
            math.log(sum(w[k].item() * math.exp(diag_gaussian_log_prob(zi, means[k], logvars[k]))
                         for k in range(4)))
            for zi in z
        ], dtype=torch.double)
        got = diag_gaussian_mixture_log_prob(z, means, logvars, log_w)
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="means and logvars"):
        diag_gaussian_mixture_log_prob(z, means, logvars[:3])
    with pytest.raises(ValueError, match="log_weights"):
        diag_gaussian_mixture_log_prob(z, means, logvars, weights[:2])
