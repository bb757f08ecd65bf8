"""Variational autoencoder with a Gaussian decoder of variance sigma^2 (beta-VAE via sigma)."""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import gaussian_kl_standard, gaussian_nll, reparameterize
from genae_lightning.methods.base import GaussianPosteriorAutoencoder, LossOutput


class VAE(GaussianPosteriorAutoencoder):
    """VAE with q(z|x) = N(mu(x), diag sigma_q^2(x)), p(z) = N(0, I), p(x|z) = N(g(z), sigma^2 I).

    The loss is the negative ELBO, ``||x - g(z)||^2 / (2 sigma^2) + const + KL(q || p)``. Scaled
    by sigma^2 it is ``1/2 ||x - g(z)||^2 + sigma^2 KL``, so sigma^2 plays beta of beta-VAE, as in
    the InjFlow paper's baselines (VAE: sigma = 1; beta-VAE: sigma in
    {0.001, 0.01, 0.05, 0.1, 0.5}).

    Args:
        image_shape: (C, H, W) of the data; linked from the DataModule by the CLI.
        latent_dim: Latent dimension.
        sigma: Standard deviation of the Gaussian decoder (> 0); beta = sigma^2.
        backbone: Encoder/decoder factory; ``ConvBackbone()`` by default. The encoder outputs
            ``2 * latent_dim`` features: mean and log-variance.
        optimizer: Optimizer factory; Adam(lr=1e-3) by default.

    Reference:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Higgins et al.,
        "beta-VAE", ICLR 2017; baselines (v) and (vi) of Kumar et al., AISTATS 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        sigma: float = 1.0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma (decoder standard deviation) must be > 0, got {sigma}")
        super().__init__(image_shape, latent_dim, backbone, optimizer, 2 * latent_dim)
        self.sigma = sigma
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Negative ELBO with one reparameterised sample."""
        mean, logvar = self.posterior(x)
        x_hat = self.decode(reparameterize(mean, logvar))
        nll = gaussian_nll(x, x_hat, self.sigma).mean()
        kl = gaussian_kl_standard(mean, logvar).mean()
        return LossOutput(nll + kl, {"nll": nll, "kl": kl})
