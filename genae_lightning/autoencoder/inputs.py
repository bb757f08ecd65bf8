"""Checks of a method's inputs: image batches (type, dtype, shape, pixel range), sample counts."""

import numbers

import torch
from torch import Tensor, nn

from genae_lightning.backbones.base import ImageShape

_SHAPE_ONLY = (nn.Unflatten, nn.Flatten, nn.Identity, nn.Dropout)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_batch(owner: str, x: object, image_shape: ImageShape,
                weights: torch.dtype | None = None) -> None:
    """Refuse what is not a batch of float images of ``image_shape`` in the weights' dtype.

    Args:
        owner: The method's name, for the message.
        x: What was passed as the batch.
        image_shape: (C, H, W) the model was built for.
        weights: Dtype of the model's weights; a batch of another floating dtype is refused
            unless autocast is on (mixed precision casts it). None: not checked.

    Raises:
        TypeError: If ``x`` is not a tensor, or not of a floating dtype, or not of ``weights``.
        ValueError: If ``x`` has no batch dimension or another image shape.
    """
    expected = f"(B, {', '.join(map(str, image_shape))})"
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{owner} takes a torch.Tensor of images {expected}, got {type(x).__name__}; "
            "convert it with torch.as_tensor(x, dtype=torch.float32)"
        )
    if not x.is_floating_point():
        scale = " / 255" if x.dtype == torch.uint8 else ""
        raise TypeError(
            f"{owner} takes float images in [0, 1], got a batch of dtype {_name(x.dtype)}; "
            f"convert it with x.float(){scale} (the DataModules yield float32 in [0, 1])"
        )
    if weights is not None and x.dtype != weights and not torch.is_autocast_enabled(
            x.device.type):
        raise TypeError(
            f"{owner}'s weights are {_name(weights)}, got a batch of dtype {_name(x.dtype)}; "
            f"convert it with x.to(torch.{_name(weights)}), or the model with "
            f"model.to(torch.{_name(x.dtype)})"
        )
    if x.dim() == len(image_shape) and tuple(x.shape) == tuple(image_shape):
        raise ValueError(
            f"{owner} takes a batch of images {expected}, got one image of shape "
            f"{tuple(x.shape)} without the batch dimension; pass x.unsqueeze(0), a batch of one"
        )
    check_batch_shape(owner, x, image_shape)


def check_batch_shape(owner: str, x: Tensor, image_shape: ImageShape) -> None:
    """Refuse a batch whose images are not of ``image_shape``, naming both shapes."""
    if x.dim() != len(image_shape) + 1:
        raise ValueError(
            f"{owner} takes a {len(image_shape) + 1}-dimensional batch of images "
            f"(B, {', '.join(map(str, image_shape))}), got a tensor of shape {tuple(x.shape)} "
            f"({x.dim()} dimensions)"
        )
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{owner} was built for images of shape {tuple(image_shape)}, got a batch of shape "
            f"{tuple(x.shape)}; set model.image_shape to the data's shape (the CLI links it from "
            "the DataModule)"
        )


def check_sample_count(owner: str, n: object) -> None:
    """Refuse a sample count ``n`` that is not a positive int (bools and tensors included).

    Args:
        owner: The method's name, for the message.
        n: What was passed as the number of images.

    Raises:
        TypeError: If ``n`` is not an integer.
        ValueError: If ``n`` < 1.
    """
    if isinstance(n, Tensor):
        got = f"a tensor of shape {tuple(n.shape)}; pass int(n)"
    elif isinstance(n, bool) or not isinstance(n, numbers.Integral):
        got = f"{n!r} ({type(n).__name__})"
    elif n < 1:
        raise ValueError(f"{owner}.sample(n) takes a number of images n >= 1, got {n}")
    else:
        return
    raise TypeError(f"{owner}.sample(n) takes a positive int n (how many images), got {got}")


def check_pixel_range(owner: str, decoder: nn.Module, x: Tensor) -> None:
    """Images must lie in [0, 1] when the decoder's last (non-reshaping) layer is a sigmoid."""
    leaves = [m for m in decoder.modules() if not list(m.children())]
    last = next((m for m in reversed(leaves) if not isinstance(m, _SHAPE_ONLY)), None)
    lo, hi = float(x.min()), float(x.max())
    if isinstance(last, nn.Sigmoid) and (lo < 0.0 or hi > 1.0):
        raise ValueError(
            f"{owner}'s decoder ends in a sigmoid, so images must lie in [0, 1], but a batch "
            f"spans [{lo:.3g}, {hi:.3g}]; scale the data to [0, 1] (the DataModules do) or use a "
            "backbone with output_activation='identity'"
        )
