"""The backbone interface: a factory for an encoder and a decoder."""

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from genae_lightning.trust import trusted_base

ImageShape = tuple[int, int, int]


@trusted_base("backbone")
class Backbone(ABC):
    """Builds the encoder and decoder networks of a method.

    A backbone object carries only architecture choices (widths, kernel sizes); the shapes come
    from the method, which gets the image shape from the data and chooses the encoder's output
    width (a VAE asks for ``2 * latent_dim`` and splits it).

    Every subclass is registered with ``torch.serialization.add_safe_globals`` when it is defined,
    so checkpoints whose hyperparameters hold a backbone object load with ``weights_only=True``
    (Lightning's default when resuming).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        torch.serialization.add_safe_globals([cls])

    @abstractmethod
    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """Return a module mapping (B, C, H, W) images to (B, out_features)."""

    @abstractmethod
    def decoder(self, latent_dim: int, image_shape: ImageShape) -> nn.Module:
        """Return a module mapping (B, latent_dim) latents to (B, C, H, W) images."""


def check_image_shape(image_shape: ImageShape) -> ImageShape:
    """Validate an image shape (C, H, W) and return it as a tuple of ints."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (channels, height, width) with positive sizes, got {image_shape}"
        )
    return shape  # type: ignore[return-value]
