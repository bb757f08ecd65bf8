"""Evaluation metrics: FID (torchmetrics) with cached real statistics, KNN accuracy, samplers.

Entry points: :func:`evaluate_generative` (every metric of a trained method at once, used by the
``GenerativeMetrics`` callback and ``genae evaluate``), :class:`FID`, :func:`knn_accuracy`.
"""

from genae_lightning.metrics.batchnorm import recalibrate_batchnorm
from genae_lightning.metrics.classifier import ClassifierFeatures, SmallClassifier
from genae_lightning.metrics.distributed import Collective
from genae_lightning.metrics.features import inception_weights
from genae_lightning.metrics.fid import FID, FeatureStats, default_cache_dir, to_rgb
from genae_lightning.metrics.knn import knn_accuracy
from genae_lightning.metrics.samplers import SAMPLERS, fit_gmm, posthoc_priors, sample_batches
from genae_lightning.metrics.suite import Evaluation, MetricsConfig, evaluate_generative

__all__ = [
    "SAMPLERS",
    "ClassifierFeatures",
    "Collective",
    "Evaluation",
    "FID",
    "FeatureStats",
    "MetricsConfig",
    "SmallClassifier",
    "default_cache_dir",
    "evaluate_generative",
    "fit_gmm",
    "inception_weights",
    "knn_accuracy",
    "posthoc_priors",
    "recalibrate_batchnorm",
    "sample_batches",
    "to_rgb",
]
