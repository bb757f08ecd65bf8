"""dpVAE: a VAE with a standard normal or a decoupled (RealNVP) prior.

It is also the base of the regularised VAEs in ``regularised_vae.py`` (beta-VAE-H/B,
beta-TCVAE, FactorVAE, InfoVAE), which replace its KL term.
"""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import gaussian_kl_standard, gaussian_nll, reparameterize
from genae_lightning.functional.tc import gaussian_kl_mc
from genae_lightning.methods.base import GaussianPosteriorAutoencoder, LossOutput
from genae_lightning.priors import PriorKind, make_prior


class DPVAE(GaussianPosteriorAutoencoder):
    """VAE whose prior p(z) is N(0, I) or the decoupled prior N(g(z); 0, I) |det dg/dz|.

    The loss is ``||x - f(z)||^2 / (2 sigma^2) + const + R(x)`` with one reparameterised sample
    z ~ q(z|x) = N(mu(x), diag sigma_q^2(x)). For this class R is KL(q(z|x) || p(z)) (the ELBO);
    the regularised VAEs override :meth:`regulariser`. The KL is in closed form for the standard
    prior and the one-sample estimate log q(z|x) - log p(z) at the same z otherwise (the paper's
    eq. 5). The flow g is a submodule, trained jointly by every term that involves p(z); samples
    draw z0 ~ N(0, I) and decode z = g^{-1}(z0).

    Args:
        image_shape: (C, H, W) of the data; linked from the DataModule by the CLI.
        latent_dim: Latent dimension d (>= 2 for the decoupled prior).
        prior: ``"decoupled"`` (dpVAE) or ``"standard"`` (N(0, I): the plain VAE).
        flow_layers: Affine coupling layers of the decoupled prior's RealNVP.
        flow_hidden: Hidden width of every coupling network.
        sigma: Standard deviation of the Gaussian decoder (> 0).
        backbone: Encoder/decoder factory; ``ConvBackbone()`` by default. The encoder outputs
            ``2 * latent_dim`` features: mean and log-variance.
        optimizer: Optimizer factory over all parameters (the flow's included); Adam by default.

    Reference:
        Bhalodia, Lee & Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs",
        ACCV 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        prior: PriorKind = "decoupled",
        flow_layers: int = 6,
        flow_hidden: int = 64,
        sigma: float = 1.0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma (decoder standard deviation) must be > 0, got {sigma}")
        super().__init__(image_shape, latent_dim, backbone, optimizer, 2 * latent_dim)
        self.prior = make_prior(prior, latent_dim, flow_layers, flow_hidden)
        self.prior_kind = prior
        self.sigma = sigma
        self.save_hyperparameters()

    def log_likelihood(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Log-likelihood log p(x|z) of the Gaussian decoder with mean x_hat, shape (B,)."""
        return -gaussian_nll(x, x_hat, self.sigma)

    def kl(self, mean: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per example (B,): closed form for N(0, I), else log q - log p at z."""
        if self.prior_kind == "standard":
            return gaussian_kl_standard(mean, logvar)
        return gaussian_kl_mc(z, mean, logvar, self.prior.log_prob(z))

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
