"""The InjFlow paper's convolutional encoder/decoder (Kumar et al. 2020, appendix A).

Layouts per dataset (width = 1.0 gives the paper's channel counts; ``k`` = kernel size):

* ``mnist`` (28x28, k=4): encoder Conv 64/s1, 128/s2, 256/s2, 512/s2, 512/s1 -> FC d;
  decoder FC 7x7x256 -> ConvT 512/s1, 256/s1, 128/s2, 64/s2 -> ConvT C/s1 -> sigmoid.
* ``cifar`` (32x32, k=4): encoder Conv 128/s1, 256/s2, 512/s2, 1024/s2, 1024/s1 -> FC d;
  decoder FC 8x8x512 -> ConvT 1024/s1, 512/s2, 256/s2, 128/s1, 128/s1 -> Conv C (k=1) -> sigmoid.
* ``celeba`` (64x64, k=5): encoder Conv 128/s1, 256/s2, 512/s2, 1024/s2, 1024/s2 -> FC d;
  decoder FC 16x16x512 -> ConvT 1024/s1, 512/s2, 256/s2, 128/s1, 128/s1 -> Conv C (k=5) -> sigmoid.

Every conv but the last of each decoder is followed by BatchNorm (the paper drops it on the
decoder's last two ConvT layers) and ELU. Deviations from the appendix, all forced by shapes:
the appendix's MNIST decoder ends in "ConvT 64" for a one-channel image, read here as ConvT C;
its CIFAR-10 and CelebA decoders list four stride-2 ConvTs after an 8x8 (16x16) FC, which would
give 128x128 (256x256) images, so the last two run at stride 1 and the output equals the input
shape. Stride-1 transposed convolutions with an even kernel cannot keep the size, so stride-1
"ConvT" layers are size-preserving ``Conv2d`` layers (the same map family and parameter count).
Any image
whose height and width are divisible by 4 works with any layout.
"""

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from genae_lightning.backbones.base import Backbone, ImageShape, check_image_shape

Preset = Literal["auto", "mnist", "cifar", "celeba"]


@dataclass(frozen=True)
class ConvLayout:
    """Channels and strides of one dataset's encoder and decoder (width 1.0)."""

    kernel: int
    encoder: tuple[tuple[int, int], ...]  # (channels, stride) per conv
    fc_channels: int
    decoder: tuple[tuple[int, int, bool], ...]  # (channels, stride, batch_norm) per ConvT
    final_kernel: int
    final_transposed: bool


LAYOUTS: dict[str, ConvLayout] = {
    "mnist": ConvLayout(
        kernel=4,
        encoder=((64, 1), (128, 2), (256, 2), (512, 2), (512, 1)),
        fc_channels=256,
        decoder=((512, 1, True), (256, 1, True), (128, 2, True), (64, 2, False)),
        final_kernel=4,
        final_transposed=True,
    ),
    "cifar": ConvLayout(
        kernel=4,
        encoder=((128, 1), (256, 2), (512, 2), (1024, 2), (1024, 1)),
        fc_channels=512,
        decoder=((1024, 1, True), (512, 2, True), (256, 2, True), (128, 1, False), (128, 1, False)),
        final_kernel=1,
        final_transposed=False,
    ),
    "celeba": ConvLayout(
        kernel=5,
        encoder=((128, 1), (256, 2), (512, 2), (1024, 2), (1024, 2)),
        fc_channels=512,
        decoder=((1024, 1, True), (512, 2, True), (256, 2, True), (128, 1, False), (128, 1, False)),
        final_kernel=5,
        final_transposed=False,
    ),
}
_AUTO = {28: "mnist", 32: "cifar", 64: "celeba"}


def _same_conv(n_in: int, n_out: int, kernel: int) -> nn.Module:
    """Stride-1 conv keeping the spatial size (asymmetric zero padding for even kernels)."""
    if kernel % 2:
        return nn.Conv2d(n_in, n_out, kernel, padding=kernel // 2)
    lo, hi = (kernel - 1) // 2, kernel // 2
    return nn.Sequential(nn.ZeroPad2d((lo, hi, lo, hi)), nn.Conv2d(n_in, n_out, kernel))


def _conv(n_in: int, n_out: int, kernel: int, stride: int) -> nn.Module:
    """Conv that keeps the size at stride 1 and divides it by 2 (rounding down) at stride 2."""
    if stride == 1:
        return _same_conv(n_in, n_out, kernel)
    return nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=(kernel - 1) // 2)


def _conv_transpose(n_in: int, n_out: int, kernel: int, stride: int) -> nn.Module:
    """Transposed conv that multiplies the size by ``stride`` exactly."""
    if stride == 1:
        return _same_conv(n_in, n_out, kernel)
    padding = math.ceil((kernel - stride) / 2)
    output_padding = 2 * padding - (kernel - stride)
    return nn.ConvTranspose2d(
        n_in, n_out, kernel, stride=stride, padding=padding, output_padding=output_padding
    )


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return size if stride == 1 else (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


class ConvBackbone(Backbone):
    """Convolutional encoder/decoder of the InjFlow paper's appendix A (BatchNorm + ELU).

    Args:
        preset: Layout: ``"mnist"``, ``"cifar"``, ``"celeba"``, or ``"auto"`` to pick by image
            size (28 -> mnist, 32 -> cifar, 64 -> celeba, any other size divisible by 4 -> mnist).
        width: Channel multiplier; 1.0 gives the paper's channel counts, 0.25 a thin net for CPU.
    """

    def __init__(self, preset: Preset = "auto", width: float = 1.0) -> None:
        if preset != "auto" and preset not in LAYOUTS:
            raise ValueError(f"preset must be one of auto, {', '.join(LAYOUTS)}; got {preset!r}")
        if width <= 0:
            raise ValueError(f"width must be > 0 (1.0 = the paper's channels), got {width}")
        self.preset = preset
        self.width = width

    def layout(self, image_shape: ImageShape) -> ConvLayout:
        """The layout used for images of this shape."""
        _, height, width = check_image_shape(image_shape)
        if self.preset != "auto":
            return LAYOUTS[self.preset]
        return LAYOUTS[_AUTO.get(height, "mnist") if height == width else "mnist"]

    def _ch(self, channels: int) -> int:
        return max(1, round(channels * self.width))

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """Five conv blocks (Conv, BN, ELU), flatten, linear map to ``out_features``."""
        n_in, height, width = check_image_shape(image_shape)
        layout = self.layout(image_shape)
        layers: list[nn.Module] = []
        for channels, stride in layout.encoder:
            if stride > 1 and min(height, width) + 2 * ((layout.kernel - 1) // 2) < layout.kernel:
                raise ValueError(
                    f"image_shape {tuple(image_shape)} is too small for ConvBackbone's encoder "
                    f"(stride-2 convs with kernel {layout.kernel} need feature maps of at least "
                    f"{layout.kernel - 2 * ((layout.kernel - 1) // 2)} pixels); use images of at "
                    "least "
                    "8x8 or MLPBackbone"
                )
            n_out = self._ch(channels)
            layers += [_conv(n_in, n_out, layout.kernel, stride), nn.BatchNorm2d(n_out), nn.ELU()]
            height = _conv_out(height, layout.kernel, stride)
            width = _conv_out(width, layout.kernel, stride)
            n_in = n_out
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(n_in * height * width, out_features))

    def decoder(self, latent_dim: int, image_shape: ImageShape) -> nn.Module:
        """Linear map to a feature map, ConvT blocks, last conv to the channels, sigmoid."""
        channels, height, width = check_image_shape(image_shape)
        layout = self.layout(image_shape)
        scale = math.prod(stride for _, stride, _ in layout.decoder)
        if height % scale or width % scale:
            raise ValueError(
                f"ConvBackbone's {self.preset!r} decoder upsamples by {scale}, so image height and "
                f"width must be divisible by {scale}; got image_shape {tuple(image_shape)}. "
                "Use MLPBackbone for other sizes or resize the images."
            )
        n_in = self._ch(layout.fc_channels)
        fc_shape = (n_in, height // scale, width // scale)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, math.prod(fc_shape)),
            nn.Unflatten(1, fc_shape),
            nn.BatchNorm2d(n_in),
            nn.ELU(),
        ]
        for n_ch, stride, batch_norm in layout.decoder:
            n_out = self._ch(n_ch)
            layers.append(_conv_transpose(n_in, n_out, layout.kernel, stride))
            layers += [nn.BatchNorm2d(n_out), nn.ELU()] if batch_norm else [nn.ELU()]
            n_in = n_out
        last = _conv_transpose if layout.final_transposed else _conv
        layers += [last(n_in, channels, layout.final_kernel, 1), nn.Sigmoid()]
        return nn.Sequential(*layers)
