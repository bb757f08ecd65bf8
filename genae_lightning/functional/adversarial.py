"""Non-saturating GAN losses on discriminator logits (WAE-GAN's latent discriminator)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E log D(real) - E log(1 - D(fake)) with D = sigmoid(logits): the discriminator's loss.

    Example:
        >>> round(discriminator_loss(torch.zeros(3, 1), torch.zeros(2, 1)).item(), 4)  # 2 log 2
        1.3863
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: Tensor) -> Tensor:
    """-E log D(fake): the non-saturating loss of the model that produces the fakes.

    Example:
        >>> round(generator_loss(torch.zeros(4, 1)).item(), 4)  # log 2
        0.6931
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
