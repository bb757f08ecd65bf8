"""The prior interface."""

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genae_lightning.functional.tc import gaussian_kl_mc
from genae_lightning.trust import trusted_base


@trusted_base("prior")
class Prior(nn.Module, ABC):
    """A distribution over latents of dimension ``dim`` with a density and a sampler.

    A prior that a method takes as its ``prior=`` argument (``StandardNormal()``,
    ``DecoupledPrior(...)``) may be built without ``dim``: the method calls :meth:`bind` with
    its ``latent_dim``, and a prior built with another ``dim`` is refused there.
    """

    paper: ClassVar[str | None] = None
    """The paper that introduced the prior, cited by the model card of a method built with it
    whose class cites none (``VAE(prior=DecoupledPrior())`` is the dpVAE paper's)."""

    def __init__(self, dim: int | None) -> None:
        super().__init__()
        self.dim: int | None = None
        if dim is not None:
            self._set_dim(dim)

    def _set_dim(self, dim: int) -> None:
        """Set the latent dimension (subclasses build their dimension-dependent parts here)."""
        if dim < 1:
            raise ValueError(f"latent dimension must be >= 1, got {dim}")
        self.dim = dim

    def bind(self, dim: int) -> "Prior":
        """This prior, with dimension ``dim`` (set now if it was built without one).

        Raises:
            ValueError: The prior was built with another dimension.
        """
        if self.dim is None:
            self._set_dim(dim)
        elif self.dim != dim:
            raise ValueError(
                f"{type(self).__name__} was built with dim={self.dim}, but the method's "
                f"latent_dim is {dim}; leave the prior's dim unset (the method sets it to its "
                "latent_dim) or make the two equal"
            )
        return self

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments besides ``dim`` (none by default).

        A method stores ``class_path`` and these as its ``prior`` hyperparameter (checkpoints hold
        plain values; the weights are in the state dict).
        """
        return {}

    def kl_from_gaussian(self, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(N(mean, diag exp(logvar)) || p) per example (B,): log q(z) - log p(z) at ``z``.

        The one-sample estimate at the posterior sample z; priors with a closed form override it.
        """
        return gaussian_kl_mc(z, mean, logvar, self.log_prob(z))

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of latents z, shape (B, dim) -> (B,)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n latents, shape (n, dim), on the prior's device."""

    def bound_dim(self) -> int:
        """The latent dimension; ``RuntimeError`` if the prior was built without one."""
        if self.dim is None:
            raise RuntimeError(
                f"{type(self).__name__} has no latent dimension yet: pass dim=..., or give it "
                "to a method as prior=..., which sets dim to its latent_dim"
            )
        return self.dim

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.bound_dim():
            raise ValueError(f"expected latents of shape (batch, {self.dim}), got {tuple(z.shape)}")

    def _randn(self, *shape: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise on the prior's device, drawn on the generator's device."""
        device = generator.device if generator is not None else self.device
        return torch.randn(*shape, generator=generator, device=device).to(self.device)

    @property
    def device(self) -> torch.device:
        """Device of the prior's buffers (CPU when it has none)."""
        tensors = list(self.buffers()) + list(self.parameters())
        return tensors[0].device if tensors else torch.device("cpu")
