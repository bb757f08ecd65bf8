"""Evaluation metrics (torchmetrics ``Metric`` classes with functional twins): FID, 5-NN, SSE.

Entry points: :func:`evaluate_generative` (every metric of a trained method at once, used by the
``GenerativeMetrics`` callback and ``genae evaluate``); the metrics :class:`FID` (twin
:func:`frechet_distance`), :class:`KNNAccuracy` (twin
:func:`~genae_lightning.functional.knn_accuracy`) and
:class:`ReconstructionSSE` (twin :func:`~genae_lightning.functional.sum_squared_error`); the
submanifold diagnostics of VAEs in :mod:`~genae_lightning.metrics.diagnostics`.
"""

from genae_lightning.functional.frechet import frechet_distance
from genae_lightning.functional.knn import knn_accuracy
from genae_lightning.metrics.fid import (
    FID,
    FeatureStats,
    default_cache_dir,
    fid_prefix,
    split_fid_key,
    to_rgb,
)
from genae_lightning.metrics.knn import KNNAccuracy
from genae_lightning.metrics.sse import ReconstructionSSE
from genae_lightning.metrics.suite import Evaluation, MetricsConfig, evaluate_generative

__all__ = [
    "Evaluation",
    "FID",
    "FeatureStats",
    "KNNAccuracy",
    "MetricsConfig",
    "ReconstructionSSE",
    "default_cache_dir",
    "evaluate_generative",
    "fid_prefix",
    "frechet_distance",
    "knn_accuracy",
    "split_fid_key",
    "to_rgb",
]
