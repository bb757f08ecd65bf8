"""Fully connected encoder/decoder for small or flat data (digits 8x8, two moons)."""

import math
from typing import Literal

from torch import nn

from genae_lightning.backbones.base import Backbone, ImageShape, check_image_shape


def _mlp(sizes: list[int], batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ELU())
    return layers


class MLPBackbone(Backbone):
    """Multi-layer perceptron encoder and decoder with ELU activations.

    Args:
        hidden: Hidden layer widths of the encoder; the decoder mirrors them.
        batch_norm: Put BatchNorm after each hidden linear layer.
        output_activation: ``"sigmoid"`` for images in [0, 1], ``"identity"`` for real-valued data.
    """

    def __init__(
        self,
        hidden: list[int] | None = None,
        batch_norm: bool = False,
        output_activation: Literal["sigmoid", "identity"] = "sigmoid",
    ) -> None:
        self.hidden = list(hidden) if hidden is not None else [256, 256]
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive, got {self.hidden}")
        if output_activation not in ("sigmoid", "identity"):
            raise ValueError(
                f"output_activation must be 'sigmoid' or 'identity', got {output_activation!r}"
            )
        self.batch_norm = batch_norm
        self.output_activation = output_activation

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """Flatten, hidden layers, linear map to ``out_features``."""
        n_in = math.prod(check_image_shape(image_shape))
        body = _mlp([n_in, *self.hidden], self.batch_norm)
        return nn.Sequential(nn.Flatten(), *body, nn.Linear(self.hidden[-1], out_features))

    def decoder(self, latent_dim: int, image_shape: ImageShape) -> nn.Module:
        """Hidden layers (mirrored), linear map to the pixels, output activation, reshape."""
        shape = check_image_shape(image_shape)
        sizes = [latent_dim, *reversed(self.hidden)]
        out_act: nn.Module = nn.Sigmoid() if self.output_activation == "sigmoid" else nn.Identity()
        return nn.Sequential(
            *_mlp(sizes, self.batch_norm),
            nn.Linear(sizes[-1], math.prod(shape)),
            out_act,
            nn.Unflatten(1, shape),
        )
