"""Checks of a method's input batches: image shape, and pixel range for a sigmoid decoder."""

from torch import Tensor, nn

from genae_lightning.backbones.base import ImageShape

_SHAPE_ONLY = (nn.Unflatten, nn.Flatten, nn.Identity, nn.Dropout)


def check_batch_shape(owner: str, x: Tensor, image_shape: ImageShape) -> None:
    """Refuse a batch whose images are not of ``image_shape``, naming both shapes."""
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{owner} was built for images of shape {tuple(image_shape)}, got a batch of shape "
            f"{tuple(x.shape)}; set model.image_shape to the data's shape (the CLI links it from "
            "the DataModule)"
        )


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
