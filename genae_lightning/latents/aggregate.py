"""The aggregate posterior q(z) = E_x q(z|x): the mixture of (a subsample of) training posteriors.

It follows the :class:`~genae_lightning.priors.Prior` interface (``log_prob``, ``sample``), so the
submanifold diagnostics treat p(z) and q(z) alike.
"""

import math

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from genae_lightning.functional import diag_gaussian_mixture_log_prob
from genae_lightning.functional.precision import to_module
from genae_lightning.priors import Prior


class AggregatePosterior(Prior):
    """q(z) = (1/K) sum_k N(z; mean_k, diag exp(logvar_k)).

    Args:
        means: Posterior means of K training examples, shape (K, d).
        logvars: Their log-variances, shape (K, d).
        chunk: Points evaluated at once by ``log_prob`` (memory ~ chunk x K x d floats).
    """

    def __init__(self, means: Tensor, logvars: Tensor, chunk: int = 512) -> None:
        if means.dim() != 2 or means.shape != logvars.shape or means.shape[0] < 1:
            raise ValueError(f"means and logvars must both be (K, d) with K >= 1, got "
                             f"{tuple(means.shape)} and {tuple(logvars.shape)}")
        super().__init__(means.shape[1])
        self.register_buffer("means", means.detach().float().clone())
        self.register_buffer("logvars", logvars.detach().float().clone())
        self.chunk = chunk

    @property
    def n_components(self) -> int:
        """Number K of posteriors in the mixture."""
        return self.means.shape[0]

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of the mixture, (B, d) -> (B,), in chunks of ``chunk`` points."""
        self._check(z)
        z = z.to(self.means)
        return torch.cat([diag_gaussian_mixture_log_prob(part, self.means, self.logvars)
                          for part in z.split(self.chunk)])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Pick a posterior uniformly, then draw from it; (n, d)."""
        device = generator.device if generator is not None else self.device
        k = torch.randint(self.n_components, (n,), generator=generator, device=device)
        k = k.to(self.device)
        eps = self._randn(n, self.dim, generator=generator)
        return self.means[k] + torch.exp(0.5 * self.logvars[k]) * eps


def require_posterior(model: torch.nn.Module) -> None:
    """Raise a TypeError unless ``model`` has a Gaussian ``posterior(x) -> (mean, logvar)``."""
    if not callable(getattr(model, "posterior", None)):
        raise TypeError(
            f"{type(model).__name__} has no Gaussian posterior(x) -> (mean, logvar); the "
            "submanifold diagnostics need a VAE (VAE, BetaVAEH, BetaTCVAE, ..., with either prior)"
        )


@torch.no_grad()
def aggregate_posterior(
    model: torch.nn.Module, dataloader: DataLoader, max_points: int | None = 10_000
) -> AggregatePosterior:
    """Encode (up to ``max_points`` of) a loader's images into the mixture of their posteriors.

    Args:
        model: A method with ``posterior(x) -> (mean, logvar)`` (VAE and its subclasses).
        dataloader: Training images, batches ``x`` or ``(x, y)``.
        max_points: Mixture components kept (the first ones the loader yields); all when None.
    """
    require_posterior(model)
    means, logvars, count = [], [], 0
    limit = math.inf if max_points is None else max_points
    for batch in dataloader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        mean, logvar = model.posterior(to_module(x, model))
        means.append(mean.float().cpu())
        logvars.append(logvar.float().cpu())
        count += x.shape[0]
        if count >= limit:
            break
    if not means:
        raise ValueError("the dataloader yielded no images to build q(z) from")
    keep = slice(None) if max_points is None else slice(0, max_points)
    return AggregatePosterior(torch.cat(means)[keep], torch.cat(logvars)[keep])
