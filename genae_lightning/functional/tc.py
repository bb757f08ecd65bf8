"""The KL term of a VAE against any prior, and its decomposition into MI, TC and dimension-wise KL.

For a minibatch of posteriors q(z|x_j) = N(mean_j, diag exp(logvar_j)) and one sample z_i from
each, beta-TCVAE (Chen et al., 2018) splits the averaged KL(q(z|x) || p(z)) into::

    E[log q(z|x) - log q(z)]            index-code mutual information (MI)
  + E[log q(z) - sum_l log q(z_l)]      total correlation (TC)
  + E[sum_l log q(z_l) - log p(z)]      dimension-wise KL (exactly that when p factorises)

with the aggregate posterior q(z) and its marginals q(z_l) estimated on the minibatch by minibatch
weighted (MWS) or stratified (MSS) sampling. The three terms sum to log q(z|x) - log p(z), the
one-sample estimate of the KL, for any prior: with the decoupled prior log p(z) is the flow's
exact log-density at the posterior samples.
"""

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from genae_lightning.functional.mixture import diag_gaussian_log_prob

AggregateEstimator = Literal["mws", "mss"]


def gaussian_kl_mc(z: Tensor, mean: Tensor, logvar: Tensor, log_pz: Tensor) -> Tensor:
    """One-sample KL estimate log q(z|x) - log p(z) for z drawn from q(z|x) = N(mean, diag var).

    Unbiased for KL(q(z|x) || p(z)) when z is a (reparameterised) draw from q(z|x); used where
    the prior has no closed-form KL (the decoupled prior).

    Args:
        z: Posterior samples, shape (B, d).
        mean: Posterior means, shape (B, d).
        logvar: Posterior log-variances, shape (B, d).
        log_pz: Prior log-density at z, shape (B,).

    Returns:
        Per-example estimates, shape (B,).

    Example:
        >>> z = torch.zeros(1, 2)
        >>> log_pz = torch.tensor([-math.log(2 * math.pi)])  # N(0; 0, I_2)
        >>> gaussian_kl_mc(z, z, torch.zeros(1, 2), log_pz).abs() < 1e-6
        tensor([True])
    """
    return diag_gaussian_log_prob(z, mean, logvar) - log_pz


def log_density_matrix(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Log-densities log q(z_il | x_j) for samples i, posteriors j, dimensions l: (B, B, d)."""
    return diag_gaussian_log_prob(z[:, None, :, None], mean[None, :, :, None],
                                  logvar[None, :, :, None])


def stratified_log_weights(batch_size: int, dataset_size: int) -> Tensor:
    """Log importance weights (B, B) of minibatch stratified sampling (Chen et al., app. C.2).

    Row i weighs posterior i by 1/N, posterior i+1 (cyclically) by (N - M)/(N M) and the others
    by 1/M, with M = B - 1; every row sums to one.
    """
    n, m = dataset_size, batch_size - 1
    weights = torch.full((batch_size, batch_size), 1.0 / m)
    idx = torch.arange(batch_size)
    weights[idx, idx] = 1.0 / n
    weights[idx, (idx + 1) % batch_size] = (n - m) / (n * m)
    return weights.log()


def aggregate_log_densities(
    z: Tensor, mean: Tensor, logvar: Tensor, dataset_size: int,
    estimator: AggregateEstimator = "mws",
) -> tuple[Tensor, Tensor]:
    """Minibatch estimates of log q(z_i) and sum_l log q(z_il), each shape (B,).

    Args:
        z: One sample per posterior, shape (B, d).
        mean: Posterior means, shape (B, d).
        logvar: Posterior log-variances, shape (B, d).
        dataset_size: Number N of training examples.
        estimator: ``"mws"`` (minibatch weighted sampling) or ``"mss"`` (stratified).
    """
    batch_size = z.shape[0]
    if dataset_size < batch_size or batch_size < (2 if estimator == "mss" else 1):
        raise ValueError(f"need 1 <= batch size <= dataset_size (2 <= for 'mss'), got "
                         f"{batch_size} and {dataset_size}")
    mat = log_density_matrix(z, mean, logvar)  # (B, B, d)
    if estimator == "mws":
        joint = torch.logsumexp(mat.sum(2), dim=1) - math.log(batch_size * dataset_size)
        marginals = torch.logsumexp(mat, dim=1) - math.log(batch_size * dataset_size)
        return joint, marginals.sum(1)
    if estimator == "mss":
        log_w = stratified_log_weights(batch_size, dataset_size).to(mat)  # (B, B)
        joint = torch.logsumexp(mat.sum(2) + log_w, dim=1)
        marginals = torch.logsumexp(mat + log_w[:, :, None], dim=1)
        return joint, marginals.sum(1)
    raise ValueError(f"estimator must be 'mws' or 'mss', got {estimator!r}")


class KLDecomposition(NamedTuple):
    """Per-example terms of the decomposed KL, each (B,); they sum to log q(z|x) - log p(z)."""

    mi: Tensor
    tc: Tensor
    dim_kl: Tensor


def kl_decomposition(
    z: Tensor, mean: Tensor, logvar: Tensor, log_pz: Tensor, dataset_size: int,
    estimator: AggregateEstimator = "mws",
) -> KLDecomposition:
    """beta-TCVAE's split of the KL into MI, TC and (dimension-wise) prior KL.

    Args:
        z: Posterior samples, one per example, shape (B, d).
        mean: Posterior means, shape (B, d).
        logvar: Posterior log-variances, shape (B, d).
        log_pz: Prior log-density at z, shape (B,): N(0, I)'s for beta-TCVAE, the decoupled
            prior's (flow) density for beta-TC-dpVAE.
        dataset_size: Number N of training examples (weights of the minibatch estimators).
        estimator: ``"mws"`` or ``"mss"``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> mean, logvar = torch.randn(4, 2), torch.zeros(4, 2)
        >>> z = mean + torch.randn(4, 2)
        >>> log_pz = diag_gaussian_log_prob(z, torch.zeros(2), torch.zeros(2))
        >>> parts = kl_decomposition(z, mean, logvar, log_pz, dataset_size=100)
        >>> torch.allclose(sum(parts), gaussian_kl_mc(z, mean, logvar, log_pz), atol=1e-5)
        True
    """
    log_qz_x = diag_gaussian_log_prob(z, mean, logvar)  # (B,)
    log_qz, log_prod_qzl = aggregate_log_densities(z, mean, logvar, dataset_size, estimator)
    return KLDecomposition(log_qz_x - log_qz, log_qz - log_prod_qzl, log_prod_qzl - log_pz)


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Shuffle every latent dimension independently across the batch (FactorVAE's q-bar(z)).

    Samples of the result follow the product of the marginals of the batch's codes.

    Example:
        >>> z = torch.arange(6.0).view(3, 2)
        >>> permuted = permute_dims(z, torch.Generator().manual_seed(0))
        >>> sorted(permuted[:, 0].tolist()), sorted(permuted[:, 1].tolist())
        ([0.0, 2.0, 4.0], [1.0, 3.0, 5.0])
    """
    if z.dim() != 2:
        raise ValueError(f"expected codes of shape (B, d), got {tuple(z.shape)}")
    b, d = z.shape
    device = generator.device if generator is not None else z.device
    perms = torch.argsort(torch.rand(b, d, generator=generator, device=device), dim=0).to(z.device)
    return torch.gather(z, 0, perms)
