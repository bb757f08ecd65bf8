"""Methods: one LightningModule per generative autoencoder, all on the shared backbones."""

from genae_lightning.methods.ae import AE
from genae_lightning.methods.base import GenerativeAutoencoder, LossOutput
from genae_lightning.methods.injflow import InjFlow
from genae_lightning.methods.vae import VAE

__all__ = ["AE", "VAE", "GenerativeAutoencoder", "InjFlow", "LossOutput"]
