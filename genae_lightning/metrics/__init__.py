"""Evaluation metrics: FID (torchmetrics) with cached real statistics, 5-NN accuracy, SSE.

Entry points: :func:`evaluate_generative` (every metric of a trained method at once, used by the
``GenerativeMetrics`` callback and ``genae evaluate``), :class:`FID`, :func:`knn_accuracy`; the
submanifold diagnostics of VAEs in :mod:`~genae_lightning.metrics.diagnostics`.
"""

from genae_lightning.metrics.fid import FID, FeatureStats, default_cache_dir, to_rgb
from genae_lightning.metrics.knn import knn_accuracy
from genae_lightning.metrics.suite import Evaluation, MetricsConfig, evaluate_generative

__all__ = [
    "Evaluation",
    "FID",
    "FeatureStats",
    "MetricsConfig",
    "default_cache_dir",
    "evaluate_generative",
    "knn_accuracy",
    "to_rgb",
]
