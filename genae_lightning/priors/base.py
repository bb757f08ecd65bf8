"""The prior interface."""

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Prior(nn.Module, ABC):
    """A distribution over latents of dimension ``dim`` with a density and a sampler."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"latent dimension must be >= 1, got {dim}")
        self.dim = dim

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of latents z, shape (B, dim) -> (B,)."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n latents, shape (n, dim), on the prior's device."""

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.dim:
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
