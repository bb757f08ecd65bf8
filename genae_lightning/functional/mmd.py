"""Maximum mean discrepancy (MMD) with inverse multiquadratic and Gaussian kernels.

Used by WAE-MMD (Tolstikhin et al., 2018) to match the aggregate posterior to the prior, and by
InfoVAE. Kernels are sums over bandwidths ``scales`` (in units of squared distance):

* ``"imq"``: k(x, y) = sum_s s / (s + ||x - y||^2)
* ``"rbf"``: k(x, y) = sum_s exp(-||x - y||^2 / s)

WAE uses s = 2 d sigma_z^2 times the multipliers {0.1, 0.2, 0.5, 1, 2, 5, 10}
(:func:`wae_kernel_scales`), for a prior N(0, sigma_z^2 I_d).
"""

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from genae_lightning.functional.precision import at_least_float32

Kernel = Literal["imq", "rbf"]
WAE_MULTIPLIERS: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def wae_kernel_scales(
    latent_dim: int, prior_variance: float = 1.0, multipliers: Sequence[float] = WAE_MULTIPLIERS
) -> tuple[float, ...]:
    """Bandwidths 2 d sigma_z^2 * m for each multiplier m, as in the WAE paper's code.

    Example:
        >>> wae_kernel_scales(8, multipliers=(0.5, 1.0))
        (8.0, 16.0)
    """
    if latent_dim < 1 or prior_variance <= 0:
        raise ValueError(
            f"need latent_dim >= 1 and prior_variance > 0, got {latent_dim} and {prior_variance}"
        )
    return tuple(2.0 * latent_dim * prior_variance * float(m) for m in multipliers)


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances, (N, D) x (M, D) -> (N, M), clamped at 0.

    Example:
        >>> squared_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        tensor([[25.,  1.]])
    """
    x, y = at_least_float32(x, y)  # |x|^2 + |y|^2 - 2 x.y cancels: no low-precision matmul
    with torch.autocast(device_type=x.device.type, enabled=False):
        d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.T
    return d2.clamp_min(0.0)


def kernel_matrix(
    x: Tensor, y: Tensor, kernel: Kernel = "imq", scales: Sequence[float] = (1.0,)
) -> Tensor:
    """Kernel values k(x_i, y_j) summed over the bandwidths ``scales``, shape (N, M).

    Example:
        >>> kernel_matrix(torch.zeros(1, 2), torch.ones(1, 2), "imq", scales=(2.0,))
        tensor([[0.5000]])
        >>> kernel_matrix(torch.zeros(1, 2), torch.zeros(1, 2), "rbf", scales=(1.0, 3.0))
        tensor([[2.]])
    """
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"kernel scales must be a non-empty list of values > 0, got {scales}")
    d2 = squared_distances(x, y).unsqueeze(0)  # (1, N, M)
    s = torch.as_tensor(list(scales), dtype=d2.dtype, device=d2.device).view(-1, 1, 1)
    if kernel == "imq":
        return (s / (s + d2)).sum(0)
    if kernel == "rbf":
        return torch.exp(-d2 / s).sum(0)
    raise ValueError(f"unknown kernel {kernel!r}: expected 'imq' or 'rbf'")


def mmd(
    x: Tensor,
    y: Tensor,
    kernel: Kernel = "imq",
    scales: Sequence[float] = (1.0,),
    unbiased: bool = True,
) -> Tensor:
    """Squared MMD between the samples x (N, D) and y (M, D), a scalar.

    The unbiased U-statistic leaves out the diagonals k(x_i, x_i) and k(y_j, y_j), so its
    expectation is exactly MMD^2 (it can be slightly negative); the biased V-statistic keeps them,
    is >= 0, and is 0 for identical sets.

    Args:
        x: First sample, shape (N, D), e.g. encoded latents.
        y: Second sample, shape (M, D), e.g. prior draws.
        kernel: ``"imq"`` (inverse multiquadratic) or ``"rbf"`` (Gaussian).
        scales: Bandwidths summed over (see the module docstring).
        unbiased: U-statistic (needs N, M >= 2) when True, V-statistic when False.

    Returns:
        The squared-MMD estimate, shape ().

    Example:
        >>> x = torch.tensor([[0.0], [1.0]])
        >>> mmd(x, x, "rbf", unbiased=False)
        tensor(0.)
        >>> round(mmd(x, x + 10.0, "rbf").item(), 4)  # k(x0, x1) + k(y0, y1) - ~0 = 2 / e
        0.7358
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"mmd needs two samples of shape (N, D) and (M, D), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    n, m = x.shape[0], y.shape[0]
    k_xx = kernel_matrix(x, x, kernel, scales)
    k_yy = kernel_matrix(y, y, kernel, scales)
    k_xy = kernel_matrix(x, y, kernel, scales)
    if not unbiased:
        return k_xx.mean() + k_yy.mean() - 2.0 * k_xy.mean()
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {n} and {m}")
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return xx + yy - 2.0 * k_xy.mean()
