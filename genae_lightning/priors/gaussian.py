"""Gaussian priors: the standard normal and a full-covariance Gaussian fitted to latents."""

import math

import torch
from torch import Tensor

from genae_lightning.functional import gaussian_kl_standard
from genae_lightning.functional.precision import at_least_float32
from genae_lightning.priors.base import Prior


class StandardNormal(Prior):
    """N(0, I_dim).

    Args:
        dim: Latent dimension; None when a method sets it (``VAE(prior=StandardNormal())``).
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__(dim)
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # tracks the device

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density, shape (B,)."""
        self._check(z)
        (z,) = at_least_float32(z)  # a sum of dim squares: not in bfloat16/float16
        return -0.5 * (z.pow(2).sum(dim=1) + self.bound_dim() * math.log(2 * math.pi))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, dim) standard normal latents."""
        return self._randn(n, self.bound_dim(), generator=generator)

    def kl_from_gaussian(self, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(N(mean, diag exp(logvar)) || N(0, I)) in closed form, (B,); ``z`` is unused."""
        return gaussian_kl_standard(mean, logvar)


class FullCovGaussian(Prior):
    """N(mean, cov) with a full covariance matrix, e.g. fitted to encoded training data.

    Args:
        mean: Mean, shape (dim,).
        cov: Covariance, shape (dim, dim), symmetric positive definite.
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        super().__init__(mean.shape[0])
        if cov.shape != (self.dim, self.dim):
            raise ValueError(
                f"cov must have shape ({self.dim}, {self.dim}), got {tuple(cov.shape)}"
            )
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("scale_tril", torch.linalg.cholesky(cov.detach().double()).float())

    @classmethod
    def fit(cls, z: Tensor, reg: float = 1e-6) -> "FullCovGaussian":
        """Maximum-likelihood fit to latents z of shape (N, dim), plus ``reg`` on the diagonal."""
        if z.dim() != 2 or z.shape[0] < 2:
            raise ValueError(
                f"need at least 2 latents of shape (N, dim) to fit, got {tuple(z.shape)}"
            )
        z = z.detach().double()
        mean = z.mean(dim=0)
        centred = z - mean
        cov = centred.T @ centred / z.shape[0] + reg * torch.eye(z.shape[1], dtype=z.dtype)
        return cls(mean.float(), cov)

    @property
    def cov(self) -> Tensor:
        """The covariance matrix."""
        return self.scale_tril @ self.scale_tril.T

    def _distribution(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density, shape (B,)."""
        self._check(z)
        return self._distribution().log_prob(z.float())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, dim) latents."""
        eps = self._randn(n, self.dim, generator=generator)
        return self.mean + eps @ self.scale_tril.T
