"""Terms of the relaxed injective flow objectives (9) and (10) of Kumar et al. (2020).

Every function takes ``sq_norm`` = ||J_g(z) v||^2 (an unbiased estimate of ||J_g(z)||_F^2) and
``v_sq_norm`` = ||v||^2, per example, as returned by
:func:`genae_lightning.functional.jacobian.estimate_jacobian_sq_norm`.
"""

import torch
from torch import Tensor


def _clamped(sq_norm: Tensor, v_sq_norm: Tensor, eta: float) -> Tensor:
    if eta <= 0:
        raise ValueError(f"eta must be > 0 (the paper uses 0.1), got {eta}")
    return torch.maximum(sq_norm, eta**2 * v_sq_norm)


def log_frobenius_term(sq_norm: Tensor, v_sq_norm: Tensor, latent_dim: int, eta: float) -> Tensor:
    """(d / 2) ln max(||J v||^2, eta^2 ||v||^2): the Jacobian term of objective (9) (InjFlow-ln).

    Example:
        >>> import torch
        >>> log_frobenius_term(torch.tensor([1.0]), torch.tensor([4.0]), latent_dim=2, eta=0.1)
        tensor([0.])
        >>> log_frobenius_term(torch.tensor([0.0]), torch.tensor([1.0]), latent_dim=2, eta=0.1)
        tensor([-4.6052])
    """
    return 0.5 * latent_dim * torch.log(_clamped(sq_norm, v_sq_norm, eta))


def linear_frobenius_term(
    sq_norm: Tensor, v_sq_norm: Tensor, eta: float, lam: float = 1.0
) -> Tensor:
    """(1 / (2 lambda)) max(||J v||^2, eta^2 ||v||^2): the Jacobian term of objective (10).

    Example:
        >>> import torch
        >>> linear_frobenius_term(torch.tensor([3.0]), torch.tensor([1.0]), eta=0.1, lam=1.0)
        tensor([1.5000])
    """
    if lam <= 0:
        raise ValueError(f"lambda must be > 0 (the paper fixes it to 1), got {lam}")
    return _clamped(sq_norm, v_sq_norm, eta) / (2.0 * lam)


def injectivity_penalty(sq_norm: Tensor, v_sq_norm: Tensor, eta: float) -> Tensor:
    """[ ||J v|| / ||v|| - eta ]_-^2 with [a]_- = min(a, 0): the local-injectivity constraint.

    Zero when the directional gain ||J v|| / ||v|| is at least eta.

    Example:
        >>> import torch
        >>> injectivity_penalty(torch.tensor([0.0, 4.0]), torch.tensor([1.0, 1.0]), eta=0.1)
        tensor([0.0100, 0.0000])
    """
    if eta <= 0:
        raise ValueError(f"eta must be > 0 (the paper uses 0.1), got {eta}")
    gain = torch.sqrt(sq_norm.clamp_min(1e-12) / v_sq_norm)
    return torch.clamp(gain - eta, max=0.0).pow(2)


def penalty_coefficient(step: int, nu: float, scale: float = 1000.0) -> float:
    """The InjFlow paper's penalty schedule mu_i = 1 + i^nu / scale (scale 1000, nu in {1, 1.3}).

    Example:
        >>> penalty_coefficient(0, 1.0)
        1.0
        >>> penalty_coefficient(1000, 1.0)
        2.0
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return 1.0 + float(step) ** nu / scale
