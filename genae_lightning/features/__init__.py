"""FID feature extractors: Inception-v3, or a small classifier trained on the data itself."""

from genae_lightning.features.classifier import ClassifierFeatures, SmallClassifier
from genae_lightning.features.extractors import inception_weights, resolve_feature

__all__ = ["ClassifierFeatures", "SmallClassifier", "inception_weights", "resolve_feature"]
