"""Gaussian densities and divergences."""

import math

import torch
from torch import Tensor

from genae_lightning.functional.precision import at_least_float32


def reparameterize(
    mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Draw z = mean + exp(logvar / 2) * eps with eps ~ N(0, I), differentiable in mean and logvar.

    Args:
        mean: Posterior means, shape (B, d).
        logvar: Posterior log-variances, shape (B, d).
        generator: Optional random generator for eps.

    Returns:
        Samples of shape (B, d).
    """
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def gaussian_kl_standard(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, diag(exp(logvar))) || N(0, I)), summed over latent dimensions.

    Args:
        mean: Means, shape (B, d).
        logvar: Log-variances, shape (B, d).

    Returns:
        KL per example, shape (B,).

    Example:
        >>> import torch
        >>> gaussian_kl_standard(torch.zeros(1, 3), torch.zeros(1, 3))
        tensor([0.])
        >>> gaussian_kl_standard(torch.ones(1, 2), torch.zeros(1, 2))
        tensor([1.])
    """
    mean, logvar = at_least_float32(mean, logvar)  # exp(logvar) - 1 - logvar cancels
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def gaussian_nll(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """Negative log-likelihood of x under N(mean, sigma^2 I), summed over non-batch dimensions.

    Args:
        x: Observations, shape (B, ...).
        mean: Means, same shape as ``x``.
        sigma: Standard deviation (> 0) shared by every dimension.

    Returns:
        NLL per example, shape (B,).

    Example:
        >>> import torch
        >>> round(gaussian_nll(torch.zeros(1, 1), torch.zeros(1, 1), 1.0).item(), 4)
        0.9189
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    dims = x[0].numel()
    sse = (x - mean).pow(2).flatten(1).sum(dim=1)
    return sse / (2.0 * sigma**2) + 0.5 * dims * math.log(2.0 * math.pi * sigma**2)
