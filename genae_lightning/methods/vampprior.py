"""VAE with the VampPrior: a mixture of the posteriors at K learnable pseudo-inputs."""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import diag_gaussian_log_prob, gaussian_nll, reparameterize
from genae_lightning.methods.vae import VAE
from genae_lightning.priors import PseudoInputMixture, PseudoInputs
from genae_lightning.priors.pseudo_inputs import PseudoInputHooks


class VampPrior(PseudoInputHooks, VAE):
    """VAE whose prior is p(z) = 1/K sum_k q(z | u_k), u_k learnable pseudo-inputs.

    The pseudo-inputs are initialised from K distinct training images when fitting starts (a
    seeded draw) and trained with the model. The KL term has no closed form, so it is estimated
    with the reparameterised sample z ~ q(z|x): log q(z|x) - log p(z). The loss is
    ``||x - g(z)||^2 / (2 sigma^2) + const + log q(z|x) - log p(z)``, as for ``VAE``. The
    encoder maps the K pseudo-inputs in the same mode as the data, so with BatchNorm in training
    mode they are normalised with their own batch statistics.

    Args:
        sigma: Standard deviation of the Gaussian decoder (> 0).
        num_pseudo_inputs: K (>= 1, at most the training set's size); the SWAE paper uses 500
            on MNIST (the configs set it; the small default keeps toy runs valid).
        pseudo_input_seed: Seed of the draw of the initial pseudo-inputs.

    Reference:
        Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018; a baseline of Sun & Guo,
        "Symmetric Wasserstein Autoencoders", section 3.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        sigma: float = 1.0,
        num_pseudo_inputs: int = 16,
        pseudo_input_seed: int = 0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if num_pseudo_inputs < 1:
            raise ValueError(f"num_pseudo_inputs must be >= 1, got {num_pseudo_inputs}")
        super().__init__(image_shape, latent_dim, sigma, backbone=backbone, optimizer=optimizer,
                         encoder=encoder, decoder=decoder)
        self.pseudo_input_seed = pseudo_input_seed
        pseudo_inputs = PseudoInputs(num_pseudo_inputs, self.image_shape)
        self.prior: PseudoInputMixture = PseudoInputMixture(pseudo_inputs, self.encoder, latent_dim)
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Negative ELBO with one reparameterised sample and a one-sample KL estimate."""
        mean, logvar = self.posterior(x)  # (B, d) each
        z = reparameterize(mean, logvar)
        nll = gaussian_nll(x, self.decode(z), self.sigma).mean()
        kl = (diag_gaussian_log_prob(z, mean, logvar) - self.prior.log_prob(z)).mean()
        return LossOutput(nll + kl, {"nll": nll, "kl": kl})
