"""Terms of the perceptual generative autoencoder (Zhang et al., PGA): the log-det estimate (6)."""

import math

import torch
from torch import Tensor


def sphere_perturbation(
    z: Tensor, radius: float, generator: torch.Generator | None = None
) -> Tensor:
    """Draw delta uniformly on the sphere of radius ``radius`` in R^H, one per row of ``z``.

    Args:
        z: Latents, shape (B, H); only the shape, device and dtype are used.
        radius: epsilon > 0, the radius of the sphere S(epsilon).
        generator: Optional random generator.

    Returns:
        delta of shape (B, H) with ||delta_b|| = radius for every row.

    Example:
        >>> delta = sphere_perturbation(torch.zeros(3, 5), radius=0.5)
        >>> torch.allclose(delta.norm(dim=1), torch.full((3,), 0.5))
        True
    """
    if radius <= 0:
        raise ValueError(f"the sphere radius epsilon must be > 0, got {radius}")
    direction = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    return radius * direction / direction.norm(dim=1, keepdim=True)


def log_det_jacobian_estimate(h_z: Tensor, h_z_delta: Tensor, radius: float) -> Tensor:
    """(H / 2) log(||h(z + delta) - h(z)||^2 / epsilon^2), the estimate of log|det dh/dz| in (6).

    With ||delta|| = epsilon it estimates the log-determinant from one direction; it is exact for
    h = c * identity (every direction is stretched by c).

    Args:
        h_z: h(z), shape (B, H).
        h_z_delta: h(z + delta), shape (B, H).
        radius: epsilon = ||delta||.

    Returns:
        The estimate per example, shape (B,).

    Example:
        >>> z = torch.randn(2, 4)
        >>> est = log_det_jacobian_estimate(3 * z, 3 * (z + 0.01), radius=0.01 * 4 ** 0.5)
        >>> torch.allclose(est, torch.full((2,), 4 * math.log(3.0)))
        True
    """
    if h_z.shape != h_z_delta.shape or h_z.dim() != 2:
        raise ValueError(
            f"h(z) and h(z + delta) must both have shape (B, H), got {tuple(h_z.shape)} and "
            f"{tuple(h_z_delta.shape)}"
        )
    if radius <= 0:
        raise ValueError(f"the sphere radius epsilon must be > 0, got {radius}")
    sq_norm = (h_z_delta - h_z).pow(2).sum(dim=1).clamp_min(torch.finfo(h_z.dtype).tiny)
    return 0.5 * h_z.shape[1] * (torch.log(sq_norm) - 2.0 * math.log(radius))
