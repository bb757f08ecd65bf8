"""Plain autoencoder with the l2 reconstruction loss."""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import sum_squared_error


class AE(GenerativeAutoencoder):
    """Deterministic autoencoder minimising E ||x - g(h(x))||^2 (squared error summed over pixels).

    Samples come from post-hoc priors fitted to the codes (``FitLatentPrior``).

    Args:
        latent_dim: Latent dimension (the InjFlow paper: 32 for MNIST, 128 for CIFAR-10/CelebA).

    Reference:
        Baseline (i) of Kumar, Poole & Murphy, "Regularized Autoencoders via Relaxed Injective
        Probability Flow", AISTATS 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Mean over the batch of the per-example summed squared error."""
        rec = sum_squared_error(x, self.reconstruct(x)).mean()
        return LossOutput(rec, {"rec": rec})
