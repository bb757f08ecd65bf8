"""Reconstruction errors."""

from torch import Tensor


def sum_squared_error(x: Tensor, x_hat: Tensor) -> Tensor:
    """Squared error summed over every non-batch dimension, one value per example.

    Args:
        x: Targets, shape (B, ...).
        x_hat: Reconstructions, same shape as ``x``.

    Returns:
        Tensor of shape (B,).

    Example:
        >>> import torch
        >>> sum_squared_error(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))
        tensor([4., 4.])
    """
    if x.shape != x_hat.shape:
        raise ValueError(
            f"reconstruction shape {tuple(x_hat.shape)} does not match input shape "
            f"{tuple(x.shape)}: the decoder must output the image shape it was built for"
        )
    return (x - x_hat).pow(2).flatten(1).sum(dim=1)
