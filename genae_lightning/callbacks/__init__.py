"""Callbacks: post-hoc prior fitting, metrics, image grids, reliability."""

from genae_lightning.callbacks.compile import CompileModules
from genae_lightning.callbacks.fit_prior import FitLatentPrior
from genae_lightning.callbacks.images import ImageLogger
from genae_lightning.callbacks.injflow_diagnostics import InjFlowDiagnostics
from genae_lightning.callbacks.metrics import GenerativeMetrics
from genae_lightning.callbacks.reliability import GracefulInterrupt, NonFiniteGuard, was_interrupted

__all__ = [
    "CompileModules",
    "FitLatentPrior",
    "GenerativeMetrics",
    "GracefulInterrupt",
    "ImageLogger",
    "InjFlowDiagnostics",
    "NonFiniteGuard",
    "was_interrupted",
]
