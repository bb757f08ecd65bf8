"""Latent codes of a trained method and what is built from them.

Encoding datasets, post-hoc priors and samplers, the aggregate posterior, and the BatchNorm
running statistics the codes depend on.
"""

from genae_lightning.latents.aggregate import AggregatePosterior, aggregate_posterior
from genae_lightning.latents.batchnorm import recalibrate_batchnorm
from genae_lightning.latents.encode import encode_dataset, encode_dataset_distributed
from genae_lightning.latents.samplers import SAMPLERS, posthoc_priors, sample_batches

__all__ = [
    "SAMPLERS",
    "AggregatePosterior",
    "aggregate_posterior",
    "encode_dataset",
    "encode_dataset_distributed",
    "posthoc_priors",
    "recalibrate_batchnorm",
    "sample_batches",
]
