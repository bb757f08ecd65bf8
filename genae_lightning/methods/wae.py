"""Wasserstein autoencoders with an MMD or an adversarial latent penalty (WAE-MMD, WAE-GAN)."""

from collections.abc import Sequence

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.adversarial import LatentAdversary
from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import (
    discriminator_loss,
    generator_loss,
    mmd,
    sum_squared_error,
    wae_kernel_scales,
)
from genae_lightning.functional.mmd import WAE_MULTIPLIERS, Kernel
from genae_lightning.functional.precision import at_least_float32


class WAEMMD(GenerativeAutoencoder):
    """WAE-MMD: deterministic autoencoder + lam * MMD(q(z), p(z)) with p(z) = N(0, I).

    Loss per batch: mean_x ||x - g(h(x))||^2 + lam * MMD^2({h(x_i)}, {z_i ~ p}), the unbiased
    estimator with a kernel summed over bandwidths 2 d m for m in ``scale_multipliers``.

    Args:
        lam: Weight of the MMD penalty (> 0); the WAE paper uses 10 on MNIST and 100 on CelebA.
        kernel: ``"imq"`` (inverse multiquadratic, the WAE paper's choice) or ``"rbf"``.
        scale_multipliers: Kernel bandwidths in units of 2 d (the prior's E||z - z'||^2).

    Reference:
        Tolstikhin, Bousquet, Gelly & Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        lam: float = 10.0,
        kernel: Kernel = "imq",
        scale_multipliers: Sequence[float] = WAE_MULTIPLIERS,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        if kernel not in ("imq", "rbf"):
            raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}")
        if not scale_multipliers or min(scale_multipliers) <= 0:
            raise ValueError(f"scale_multipliers must be values > 0, got {scale_multipliers}")
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.lam, self.kernel = lam, kernel
        self.scales = wae_kernel_scales(latent_dim, 1.0, scale_multipliers)
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Reconstruction error plus lam times the MMD between codes and prior draws."""
        (z,) = at_least_float32(self.encode(x))  # (B, d)
        rec = sum_squared_error(x.float(), self.decode(z)).mean()
        z_prior = self.prior.sample(z.shape[0]).to(z)
        # the unbiased estimator needs 2 codes; a last batch of 1 falls back to the V-statistic
        div = mmd(z, z_prior, self.kernel, self.scales, unbiased=z.shape[0] > 1)
        return LossOutput(rec + self.lam * div, {"rec": rec, "mmd": div})


def latent_discriminator(latent_dim: int, hidden: Sequence[int]) -> nn.Module:
    """MLP from (B, d) latents to (B, 1) logits with ReLU hidden layers (the WAE paper's D)."""
    sizes = [latent_dim, *hidden]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


class WAEGAN(LatentAdversary):
    """WAE-GAN: deterministic autoencoder + an adversarial match of q(z) to p(z) = N(0, I).

    A latent discriminator D tells prior draws from codes. Each training step (manual
    optimisation) first updates the autoencoder on ``loss(x)`` =
    mean_x ||x - g(h(x))||^2 + lam * (-log D(h(x))), then D on
    lam * (-log D(z_prior) - log(1 - D(h(x)))) with the codes detached. ``global_step`` (and
    so ``max_steps``) counts iterations: only the autoencoder's optimizer step is counted.

    Args:
        lam: Weight of the adversarial penalty (> 0); the WAE paper uses 1 on MNIST.
        discriminator_hidden: Hidden widths of D (the WAE paper: 4 x 512 on MNIST).
        optimizer: Optimizer factory for the encoder and decoder; Adam(lr=1e-3) by default.
        discriminator_optimizer: Optimizer factory for D (the WAE paper: Adam, lr 5e-4,
            betas (0.5, 0.999)); Adam(lr=1e-3) by default.

    Reference:
        Tolstikhin, Bousquet, Gelly & Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        lam: float = 1.0,
        discriminator_hidden: Sequence[int] = (512, 512, 512, 512),
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        discriminator_optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        if not discriminator_hidden or min(discriminator_hidden) < 1:
            raise ValueError(f"discriminator_hidden needs widths >= 1, got {discriminator_hidden}")
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.lam = lam
        self.discriminator = latent_discriminator(latent_dim, discriminator_hidden)
        self.discriminator_optimizer = discriminator_optimizer
        self.automatic_optimization = False
        self.save_hyperparameters()

    def _objective(self, x: Tensor, z: Tensor) -> LossOutput:
        rec = sum_squared_error(x.float(), self.decode(z)).mean()
        adv = generator_loss(self.discriminator(*at_least_float32(z)))
        return LossOutput(rec + self.lam * adv, {"rec": rec, "adv": adv})

    def loss(self, x: Tensor) -> LossOutput:
        """The encoder/decoder objective: reconstruction + lam * (-log D(h(x)))."""
        return self._objective(x, self.encode(x))

    def discriminator_objective(self, z: Tensor) -> Tensor:
        """D's loss on codes z (detached here) against as many prior draws, times lam."""
        (z,) = at_least_float32(z.detach())
        z_prior = self.prior.sample(z.shape[0]).to(z)
        return self.lam * discriminator_loss(self.discriminator(z_prior), self.discriminator(z))

    def adversarial_losses(self, x: Tensor) -> tuple[LossOutput, Tensor]:
        """The autoencoder's objective and D's loss, from one encoder pass."""
        z = self.encode(x)
        return self._objective(x, z), self.discriminator_objective(z)
