"""Variational autoencoder with a Gaussian decoder and an injected prior (VAE and dpVAE).

It is also the base of the regularised VAEs in ``regularised_vae.py`` (beta-VAE-H/B,
beta-TCVAE, FactorVAE, InfoVAE), which replace its KL term.
"""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import LossOutput
from genae_lightning.autoencoder.gaussian import GaussianPosteriorAutoencoder
from genae_lightning.autoencoder.injected import InjectedChoices
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import gaussian_nll, reparameterize
from genae_lightning.priors import Prior, StandardNormal


class VAE(InjectedChoices, GaussianPosteriorAutoencoder):
    """VAE with q(z|x) = N(mu(x), diag sigma_q^2(x)), a prior p(z) and p(x|z) = N(g(z), sigma^2 I).

    The loss is ``||x - g(z)||^2 / (2 sigma^2) + const + R(x)`` with one reparameterised sample
    z ~ q(z|x). For this class R is KL(q(z|x) || p(z)) (the negative ELBO); the regularised VAEs
    override :meth:`regulariser`. Scaled by sigma^2 the loss is ``1/2 ||x - g(z)||^2 + sigma^2
    KL``, so sigma^2 plays beta of beta-VAE, as in the InjFlow paper's baselines (VAE: sigma = 1;
    beta-VAE: sigma in {0.001, 0.01, 0.05, 0.1, 0.5}).

    The prior is an object: ``StandardNormal()`` (None, the default: the plain VAE, KL in closed
    form) or ``DecoupledPrior(flow_layers=..., flow_hidden=...)`` (dpVAE: p(z) = N(g(z); 0, I)
    |det dg/dz|, KL estimated by log q(z|x) - log p(z) at the same z, the dpVAE paper's eq. 5).
    The method sets the prior's ``dim`` to its ``latent_dim``; a prior built with another ``dim``
    is refused. A trainable prior is a submodule, trained jointly by every term that involves
    p(z), and saved in the state dict; samples decode z ~ p(z).

    Args:
        latent_dim: Latent dimension d (>= 2 for the decoupled prior).
        sigma: Standard deviation of the Gaussian decoder (> 0); beta = sigma^2.
        prior: The prior p(z); ``StandardNormal()`` when None.

    Reference:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Higgins et al.,
        "beta-VAE", ICLR 2017; baselines (v) and (vi) of Kumar et al., AISTATS 2020; Bhalodia,
        Lee & Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs", ACCV 2020.
    """

    injected_choices = {"prior": Prior}

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        sigma: float = 1.0,
        prior: Prior | None = None,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma (decoder standard deviation) must be > 0, got {sigma}")
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(
                f"prior must be a genae_lightning.priors.Prior object (StandardNormal() or "
                f"DecoupledPrior(flow_layers=..., flow_hidden=...)), got {prior!r}"
            )
        super().__init__(image_shape, latent_dim, backbone, optimizer, 2 * latent_dim,
                         encoder=encoder, decoder=decoder)
        self.prior = (prior if prior is not None else StandardNormal()).bind(latent_dim)
        self.sigma = sigma
        self.save_hyperparameters()

    def log_likelihood(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Log-likelihood log p(x|z) of the Gaussian decoder with mean x_hat, shape (B,)."""
        return -gaussian_nll(x, x_hat, self.sigma)

    def kl(self, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per example (B,), as the prior computes it (``kl_from_gaussian``)."""
        return self.prior.kl_from_gaussian(mean, logvar, z)

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """The latent term R added to the reconstruction NLL: here the KL (the plain ELBO)."""
        kl = self.kl(mean, logvar, z).mean()
        return LossOutput(kl, {"kl": kl})

    def loss_and_codes(self, x: Tensor) -> tuple[LossOutput, Tensor]:
        """The loss and the posterior samples z (B, d) it used."""
        mean, logvar = self.posterior(x)
        z = reparameterize(mean, logvar)
        nll = -self.log_likelihood(x, self.decode(z)).mean()
        reg = self.regulariser(mean, logvar, z)
        return LossOutput(nll + reg.total, {"nll": nll, **reg.terms}), z

    def loss(self, x: Tensor) -> LossOutput:
        """Reconstruction NLL + ``regulariser``, with one reparameterised posterior sample."""
        return self.loss_and_codes(x)[0]
