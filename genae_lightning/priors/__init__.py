"""Latent priors: one interface (``log_prob``, ``sample``) for trainable and post-hoc priors."""

from genae_lightning.priors.base import Prior
from genae_lightning.priors.decoupled import DecoupledPrior
from genae_lightning.priors.gaussian import FullCovGaussian, StandardNormal
from genae_lightning.priors.gmm import GaussianMixture
from genae_lightning.priors.posthoc import POSTHOC_PRIORS, fit_posthoc_prior, prior_from_state
from genae_lightning.priors.pseudo_inputs import PseudoInputMixture, PseudoInputs

__all__ = [
    "POSTHOC_PRIORS",
    "DecoupledPrior",
    "FullCovGaussian",
    "GaussianMixture",
    "Prior",
    "PseudoInputMixture",
    "PseudoInputs",
    "StandardNormal",
    "fit_posthoc_prior",
    "prior_from_state",
]
