"""Diagonal Gaussian densities and their mixtures (VampPrior, mixture priors)."""

import math

import torch
from torch import Tensor

from genae_lightning.functional.precision import at_least_float32


def diag_gaussian_log_prob(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Log-density N(z; mean, diag(exp(logvar))) summed over the last dimension, broadcasting.

    Args:
        z: Points, shape (..., d).
        mean: Means, broadcastable to ``z``.
        logvar: Log-variances, broadcastable to ``z``.

    Returns:
        Log-densities of shape ``z.shape[:-1]`` (broadcast).

    Example:
        >>> z, zero = torch.zeros(1, 2), torch.zeros(2)
        >>> round(diag_gaussian_log_prob(z, zero, zero).item(), 4)
        -1.8379
    """
    log2pi = math.log(2.0 * math.pi)
    z, mean, logvar = at_least_float32(z, mean, logvar)  # a sum of d terms
    return -0.5 * (log2pi + logvar + (z - mean).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def diag_gaussian_mixture_log_prob(
    z: Tensor, means: Tensor, logvars: Tensor, log_weights: Tensor | None = None
) -> Tensor:
    """Log-density log sum_k w_k N(z; means_k, diag(exp(logvars_k))), by log-sum-exp.

    Args:
        z: Points, shape (B, d).
        means: Component means, shape (K, d).
        logvars: Component log-variances, shape (K, d).
        log_weights: Log mixture weights, shape (K,), normalised; uniform (-log K) when None.

    Returns:
        Log-densities, shape (B,).

    Example:
        >>> z = torch.zeros(1, 1)
        >>> means, logvars = torch.tensor([[0.0], [0.0]]), torch.zeros(2, 1)
        >>> torch.allclose(diag_gaussian_mixture_log_prob(z, means, logvars),
        ...                diag_gaussian_log_prob(z, means[0], logvars[0]))
        True
    """
    if z.dim() != 2 or means.dim() != 2 or means.shape != logvars.shape or (
        z.shape[1] != means.shape[1]
    ):
        raise ValueError(
            f"expected z (B, d), means and logvars (K, d); got {tuple(z.shape)}, "
            f"{tuple(means.shape)}, {tuple(logvars.shape)}"
        )
    k = means.shape[0]
    if log_weights is None:
        log_weights = torch.full((k,), -math.log(k), dtype=z.dtype, device=z.device)
    elif log_weights.shape != (k,):
        raise ValueError(f"log_weights must have shape ({k},), got {tuple(log_weights.shape)}")
    comp = diag_gaussian_log_prob(z[:, None], means[None], logvars[None])  # (B, K)
    return torch.logsumexp(comp + log_weights, dim=1)
