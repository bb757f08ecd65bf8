"""The machinery every method is built on: the base class and its helpers.

A method (``genae_lightning.methods``) is a subclass of :class:`GenerativeAutoencoder` that adds
its hyperparameters and its ``loss``; everything else a method does (building its networks,
checking its inputs, seeding each step's noise, stopping on non-finite terms, the optimizer
step, sampling from its prior) is here:

- :mod:`.base`: ``GenerativeAutoencoder`` and ``LossOutput``;
- :mod:`.gaussian`: the base of methods with a diagonal Gaussian posterior (VAE family, VPGA);
- :mod:`.adversarial`: the base of methods trained with a latent discriminator (WAE-GAN,
  FactorVAE);
- :mod:`.constraints`: InjFlow's growing penalty and augmented Lagrangian;
- :mod:`.networks`, :mod:`.inputs`, :mod:`.seeding`, :mod:`.nonfinite`, :mod:`.injected`,
  :mod:`.batch_statistics`: the helpers of the base.

Files of a trained method (checkpoints, pretrained folders) are ``genae_lightning.checkpoints``'.
"""

from genae_lightning.autoencoder.adversarial import LatentAdversary
from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.autoencoder.constraints import AugmentedLagrangian, Constraint, Penalty
from genae_lightning.autoencoder.gaussian import GaussianPosteriorAutoencoder

__all__ = [
    "AugmentedLagrangian",
    "Constraint",
    "GaussianPosteriorAutoencoder",
    "GenerativeAutoencoder",
    "LatentAdversary",
    "LossOutput",
    "Penalty",
]
