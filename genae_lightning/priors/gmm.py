"""Gaussian mixture prior with full covariances, fitted post hoc with scikit-learn."""

import torch
from torch import Tensor

from genae_lightning.priors.base import Prior


class GaussianMixture(Prior):
    """Mixture of K full-covariance Gaussians.

    Args:
        weights: Mixture weights, shape (K,), summing to 1.
        means: Component means, shape (K, dim).
        covs: Component covariances, shape (K, dim, dim).
    """

    def __init__(self, weights: Tensor, means: Tensor, covs: Tensor) -> None:
        super().__init__(means.shape[1])
        k = means.shape[0]
        if weights.shape != (k,) or covs.shape != (k, self.dim, self.dim):
            raise ValueError(
                f"GMM shapes disagree: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                f"covs {tuple(covs.shape)}; expected ({k},), ({k}, d), ({k}, d, d)"
            )
        self.register_buffer("weights", weights.detach().clone().float())
        self.register_buffer("means", means.detach().clone().float())
        self.register_buffer("scale_trils", torch.linalg.cholesky(covs.detach().double()).float())

    @property
    def n_components(self) -> int:
        """Number of mixture components."""
        return self.means.shape[0]

    @classmethod
    def fit(
        cls,
        z: Tensor,
        n_components: int = 10,
        seed: int = 0,
        reg: float = 1e-6,
        max_iter: int = 100,
    ) -> "GaussianMixture":
        """Fit by EM (scikit-learn, full covariances) to latents z of shape (N, dim)."""
        from sklearn.mixture import GaussianMixture as SkGMM

        if z.dim() != 2 or z.shape[0] < n_components:
            raise ValueError(
                f"need at least n_components={n_components} latents of shape (N, dim) to fit a "
                f"GMM, got {tuple(z.shape)}"
            )
        gmm = SkGMM(
            n_components,
            covariance_type="full",
            reg_covar=reg,
            random_state=seed,
            max_iter=max_iter,
        )
        gmm.fit(z.detach().double().cpu().numpy())
        return cls(
            torch.as_tensor(gmm.weights_),
            torch.as_tensor(gmm.means_),
            torch.as_tensor(gmm.covariances_),
        )

    def _distribution(self) -> torch.distributions.MixtureSameFamily:
        return torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_trils),
        )

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density, shape (B,)."""
        self._check(z)
        return self._distribution().log_prob(z.float())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, dim) latents: a component by its weight, then its Gaussian."""
        weights = self.weights.to(generator.device) if generator is not None else self.weights
        comp = torch.multinomial(weights, n, replacement=True, generator=generator)
        comp = comp.to(self.means.device)
        eps = self._randn(n, self.dim, 1, generator=generator)
        return self.means[comp] + (self.scale_trils[comp] @ eps).squeeze(-1)
