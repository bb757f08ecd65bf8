"""Methods: one LightningModule per generative autoencoder, all on the shared backbones."""

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.autoencoder.constraints import AugmentedLagrangian, Constraint, Penalty
from genae_lightning.checkpoints.loading import load_method, method_from_checkpoint
from genae_lightning.methods.ae import AE
from genae_lightning.methods.ae_variants import AEL2, AESN, CAE
from genae_lightning.methods.injflow import InjFlow
from genae_lightning.methods.pga import LPGA, VPGA
from genae_lightning.methods.rae import RAE
from genae_lightning.methods.regularised_vae import (
    BetaTCVAE,
    BetaVAEB,
    BetaVAEH,
    FactorVAE,
    InfoVAE,
)
from genae_lightning.methods.swae import SWAE
from genae_lightning.methods.vae import VAE
from genae_lightning.methods.vampprior import VampPrior
from genae_lightning.methods.wae import WAEGAN, WAEMMD

__all__ = [
    "AE",
    "AugmentedLagrangian",
    "Constraint",
    "Penalty",
    "AEL2",
    "AESN",
    "CAE",
    "BetaTCVAE",
    "BetaVAEB",
    "BetaVAEH",
    "FactorVAE",
    "InfoVAE",
    "RAE",
    "VAE",
    "WAEGAN",
    "WAEMMD",
    "GenerativeAutoencoder",
    "InjFlow",
    "LossOutput",
    "LPGA",
    "SWAE",
    "VPGA",
    "VampPrior",
    "load_method",
    "method_from_checkpoint",
]
