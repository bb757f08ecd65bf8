"""Callbacks: penalty schedules, post-hoc prior fitting, image grids."""

from genae_lightning.callbacks.fit_prior import FitLatentPrior, encode_dataset
from genae_lightning.callbacks.images import ImageLogger
from genae_lightning.callbacks.penalty import PenaltySchedule

__all__ = ["FitLatentPrior", "ImageLogger", "PenaltySchedule", "encode_dataset"]
