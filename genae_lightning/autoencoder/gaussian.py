"""Methods whose encoder outputs a diagonal Gaussian posterior q(z|x) (VAE family, VPGA)."""

from torch import Tensor

from genae_lightning.autoencoder.base import GenerativeAutoencoder


class GaussianPosteriorAutoencoder(GenerativeAutoencoder):
    """A method whose encoder outputs a diagonal Gaussian q(z|x) (VAE, dpVAE, VPGA).

    The encoder has ``2 * latent_dim`` outputs (pass ``encoder_features=2 * latent_dim``): the
    mean, then the log-variance. ``encode`` is the posterior mean.
    """

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, d)."""
        self._check_input(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean."""
        return self.posterior(x)[0]
