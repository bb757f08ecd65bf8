"""Backbone zoo: shapes round-trip, the paper's channel counts at width 1, clear shape errors."""

import pytest
import torch
from torch import nn

from genae_lightning.backbones import ConvBackbone, MLPBackbone


def conv_channels(module: nn.Module) -> list[int]:
    return [
        m.out_channels for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8), (2, 12, 16)])
def test_conv_round_trip_shapes(shape) -> None:
    bb = ConvBackbone(width=0.125)
    enc, dec = bb.encoder(shape, 10), bb.decoder(10, shape)
    x = torch.rand(2, *shape)
    z = enc(x)
    assert z.shape == (2, 10)
    out = dec(z)
    assert out.shape == (2, *shape)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid output


@pytest.mark.parametrize(
    ("shape", "encoder", "decoder", "latent", "fc"),
    [
        ((1, 28, 28), [64, 128, 256, 512, 512], [512, 256, 128, 64, 1], 32, 7 * 7 * 256),
        ((3, 32, 32), [128, 256, 512, 1024, 1024], [1024, 512, 256, 128, 128, 3], 128, 8 * 8 * 512),
        (
            (3, 64, 64),
            [128, 256, 512, 1024, 1024],
            [1024, 512, 256, 128, 128, 3],
            128,
            16 * 16 * 512,
        ),
    ],
)
def test_width_one_has_the_papers_channel_counts(shape, encoder, decoder, latent, fc) -> None:
    bb = ConvBackbone(width=1.0)
    enc, dec = bb.encoder(shape, latent), bb.decoder(latent, shape)
    assert conv_channels(enc) == encoder
    assert conv_channels(dec) == decoder
    assert enc[-1].out_features == latent
    assert dec[0].in_features == latent and dec[0].out_features == fc
    kernel = 5 if shape[1] == 64 else 4
    assert all(m.kernel_size == (kernel, kernel) for m in enc.modules() if isinstance(m, nn.Conv2d))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in dec.modules())
    assert n_bn == 1 + (3 if shape[1] != 28 else 3)  # after the FC and the first three ConvTs
    assert sum(isinstance(m, nn.ELU) for m in enc.modules()) == 5


def test_width_multiplier_scales_channels() -> None:
    assert conv_channels(ConvBackbone(width=0.25).encoder((1, 28, 28), 8)) == [16, 32, 64, 128, 128]


def test_conv_shape_errors() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvBackbone().decoder(8, (1, 30, 30))
    with pytest.raises(ValueError, match="too small for ConvBackbone"):
        ConvBackbone().encoder((1, 4, 4), 8)
    with pytest.raises(ValueError, match="width must be > 0"):
        ConvBackbone(width=0)
    with pytest.raises(ValueError, match="preset must be one of"):
        ConvBackbone(preset="imagenet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_shape must be"):
        ConvBackbone().encoder((28, 28), 8)  # type: ignore[arg-type]


def test_mlp_round_trip_and_identity_output() -> None:
    bb = MLPBackbone(hidden=[16, 8], output_activation="identity", batch_norm=True)
    enc, dec = bb.encoder((1, 1, 2), 3), bb.decoder(3, (1, 1, 2))
    x = torch.randn(5, 1, 1, 2) * 10
    assert dec(enc(x)).shape == (5, 1, 1, 2)
    assert not any(isinstance(m, nn.Sigmoid) for m in dec.modules())
    with pytest.raises(ValueError, match="output_activation"):
        MLPBackbone(output_activation="tanh")  # type: ignore[arg-type]
