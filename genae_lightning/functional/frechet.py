"""Fréchet distance between Gaussians, and Gaussian moments from feature sums (the FID maths)."""

import torch
from torch import Tensor


def gaussian_moments(total: Tensor, outer: Tensor, count: Tensor | int) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of a set from its sufficient statistics.

    Args:
        total: Sum of the vectors, (F,).
        outer: Sum of their outer products, (F, F).
        count: Number of vectors n (at least 2).

    Returns:
        ``(mean, covariance)``: (F,) and (F, F), covariance = (outer - n mean mean^T) / (n - 1).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
        >>> mean, cov = gaussian_moments(x.sum(0), x.T @ x, 2)
        >>> mean.tolist(), cov.tolist()
        ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    mean = (total / count).unsqueeze(0)  # (1, F)
    covariance = (outer - count * mean.t().mm(mean)) / (count - 1)
    return mean.squeeze(0), covariance


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    r"""Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}), with the trace of the
    matrix square root taken as the sum of the square roots of the eigenvalues of sigma1 sigma2
    (as torchmetrics' ``FrechetInceptionDistance`` does). FID is this distance between the
    Gaussians fitted to two sets' features.

    Args:
        mu1: Mean of the first Gaussian, (F,).
        sigma1: Its covariance, (F, F), symmetric positive semi-definite.
        mu2: Mean of the second Gaussian, (F,).
        sigma2: Its covariance, (F, F).

    Returns:
        The squared distance, a 0-dim tensor.

    Examples:
        >>> import torch
        >>> mu, sigma = torch.zeros(3), torch.diag(torch.tensor([1.0, 2.0, 3.0]))
        >>> round(float(frechet_distance(mu, sigma, mu, sigma)), 6)  # identical Gaussians
        0.0
        >>> d = torch.tensor([1.0, 2.0, 2.0])
        >>> round(float(frechet_distance(mu, sigma, mu + d, sigma)), 6)  # ||d||^2
        9.0
        >>> eye = torch.eye(2)
        >>> round(float(frechet_distance(torch.zeros(2), eye, torch.zeros(2), 4 * eye)), 6)
        2.0
    """
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (*mu1.shape,
                                                                                  *mu1.shape):
        raise ValueError(
            f"frechet_distance: expected means of shape (F,) and covariances of shape (F, F) for "
            f"both Gaussians, got {tuple(mu1.shape)}, {tuple(sigma1.shape)}, {tuple(mu2.shape)}, "
            f"{tuple(sigma2.shape)}; compute both from features of the same extractor"
        )
    mean_term = (mu1 - mu2).square().sum(dim=-1)
    trace_term = sigma1.trace() + sigma2.trace()
    root_trace = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum(dim=-1)
    return mean_term + trace_term - 2 * root_trace
