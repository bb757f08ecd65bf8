"""The denoising test of the SWAE paper (section 3.4): reconstruct noisy inputs, score vs clean."""

from collections.abc import Callable

import torch
from torch import Tensor

from genae_lightning.functional.reconstruction import sum_squared_error


def denoising_error(
    reconstruct: Callable[[Tensor], Tensor],
    x: Tensor,
    noise_std: float = 0.3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """||x - reconstruct(x + n)||^2 per example, with n ~ N(0, noise_std^2 I) (not clipped).

    Args:
        reconstruct: Map from (B, C, H, W) images to reconstructions, e.g. ``model.reconstruct``.
        x: Clean images, shape (B, C, H, W).
        noise_std: Standard deviation of the added Gaussian noise (the paper: 0.3).
        generator: Optional random generator for the noise.

    Returns:
        Squared error against the clean images, summed over pixels, shape (B,).

    Example:
        >>> x = torch.rand(2, 1, 3, 3)
        >>> denoising_error(lambda noisy: x, x)  # a perfect denoiser
        tensor([0., 0.])
        >>> err = denoising_error(lambda noisy: noisy, torch.zeros(1000, 1, 10, 10), noise_std=0.3)
        >>> round(err.mean().item() / 100, 2)  # the identity keeps the noise: 0.3^2 per pixel
        0.09
    """
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return sum_squared_error(x, reconstruct(x + noise_std * noise))
