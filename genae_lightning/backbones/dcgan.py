"""DCGAN-style encoder/decoder (Radford et al. 2016), as used by the PGA paper.

The encoder is DCGAN's discriminator with a linear head: stride-2 convolutions (kernel 5 by
default) doubling the channels from ``channels`` on, LeakyReLU(0.2), then an optional fully
connected layer of ``hidden`` units and a linear map to the output. The decoder mirrors it with
stride-2 transposed convolutions and ReLU, ending in a sigmoid (data in [0, 1]). BatchNorm
follows every layer but the encoder's first convolution and the decoder's output, as in DCGAN,
and can be switched off: the PGA paper warns that BatchNorm can destabilise training when the
networks see batches drawn from different distributions (data, decoded prior samples, ...).

The number of stride-2 layers is chosen from the image size by default: halve while the size
stays even and at least 4, giving 64 -> 4 layers (64, 128, 256, 512 channels: the PGA paper's
CelebA nets, DCGAN with half the filters), 32 -> 3 (CIFAR-10) and 28 -> 2 (MNIST; the paper
adds ``hidden=1024`` there, after InfoGAN).
"""

import math

from torch import nn

from genae_lightning.backbones.base import Backbone, ImageShape, check_image_shape


def auto_num_layers(size: int) -> int:
    """Stride-2 layers for an image side: halve while the side is even and stays >= 4."""
    layers = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        layers += 1
    return layers


class DCGANBackbone(Backbone):
    """DCGAN encoder/decoder with optional BatchNorm and an optional hidden dense layer.

    Args:
        channels: Filters of the first convolution, doubled at each further layer (64 = the PGA
            paper's halved DCGAN).
        num_layers: Stride-2 (transposed) convolutions; chosen from the image size when None.
        kernel: Convolution kernel size (odd, so that stride 2 halves the size exactly).
        hidden: Units of a fully connected layer between the convolutions and the code (both
            networks); 0 for none (the PGA paper: 1024 on MNIST).
        batch_norm: Use BatchNorm (see the module docstring for its placement).
        negative_slope: Slope of the encoder's LeakyReLU.
    """

    def __init__(
        self,
        channels: int = 64,
        num_layers: int | None = None,
        kernel: int = 5,
        hidden: int = 0,
        batch_norm: bool = True,
        negative_slope: float = 0.2,
    ) -> None:
        if channels < 1 or hidden < 0 or (num_layers is not None and num_layers < 1):
            raise ValueError(
                f"need channels >= 1, hidden >= 0 and num_layers >= 1 (or None); got "
                f"channels={channels}, hidden={hidden}, num_layers={num_layers}"
            )
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 3, got {kernel}")
        self.channels, self.num_layers, self.kernel = channels, num_layers, kernel
        self.hidden, self.batch_norm, self.negative_slope = hidden, batch_norm, negative_slope

    def _plan(self, image_shape: ImageShape) -> tuple[int, int, list[int]]:
        """(feature-map height, feature-map width, channels per layer) for this image shape."""
        _, height, width = check_image_shape(image_shape)
        layers = self.num_layers or max(1, auto_num_layers(min(height, width)))
        scale = 2**layers
        if height % scale or width % scale:
            raise ValueError(
                f"DCGANBackbone with {layers} stride-2 layers needs image height and width "
                f"divisible by {scale}; got image_shape {tuple(image_shape)}. Pass num_layers."
            )
        chans = [self.channels * 2**i for i in range(layers)]
        return height // scale, width // scale, chans

    def _norm(self, n: int, dims: int = 2) -> list[nn.Module]:
        if not self.batch_norm:
            return []
        return [nn.BatchNorm2d(n) if dims == 2 else nn.BatchNorm1d(n)]

    def encoder(self, image_shape: ImageShape, out_features: int) -> nn.Module:
        """Stride-2 convs (LeakyReLU), flatten, optional dense layer, linear map."""
        n_in = check_image_shape(image_shape)[0]
        fh, fw, chans = self._plan(image_shape)
        act = nn.LeakyReLU(self.negative_slope)
        layers: list[nn.Module] = []
        for i, n_out in enumerate(chans):
            layers.append(nn.Conv2d(n_in, n_out, self.kernel, 2, self.kernel // 2))
            layers += ([] if i == 0 else self._norm(n_out)) + [act]
            n_in = n_out
        layers.append(nn.Flatten())
        n_in *= fh * fw
        if self.hidden:
            layers += [nn.Linear(n_in, self.hidden), *self._norm(self.hidden, 1), act]
            n_in = self.hidden
        return nn.Sequential(*layers, nn.Linear(n_in, out_features))

    def decoder(self, latent_dim: int, image_shape: ImageShape) -> nn.Module:
        """Optional dense layer, linear map to a feature map, stride-2 ConvTs (ReLU), sigmoid."""
        n_out_img = check_image_shape(image_shape)[0]
        fh, fw, chans = self._plan(image_shape)
        layers: list[nn.Module] = []
        n_in = latent_dim
        if self.hidden:
            layers += [nn.Linear(n_in, self.hidden), *self._norm(self.hidden, 1), nn.ReLU()]
            n_in = self.hidden
        fc_shape = (chans[-1], fh, fw)
        layers += [nn.Linear(n_in, math.prod(fc_shape)), nn.Unflatten(1, fc_shape)]
        layers += [*self._norm(chans[-1]), nn.ReLU()]
        pad = self.kernel // 2
        outs = chans[-2::-1] + [n_out_img]
        for i, (n_in, n_out) in enumerate(zip(chans[::-1], outs, strict=True)):
            layers.append(nn.ConvTranspose2d(n_in, n_out, self.kernel, 2, pad, output_padding=1))
            last = i == len(outs) - 1
            layers += [nn.Sigmoid()] if last else [*self._norm(n_out), nn.ReLU()]
        return nn.Sequential(*layers)
