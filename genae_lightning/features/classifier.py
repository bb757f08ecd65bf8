"""A small image classifier whose penultimate features stand in for Inception on small images.

"Classifier FID" (FID in the feature space of a classifier trained on the dataset itself) is the
usual choice for MNIST-like data, where Inception features are a poor fit and unavailable offline.
Its numbers are only comparable with classifier FIDs computed with the same classifier file, never
with Inception FID. Train one with ``genae train-features``.
"""

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from genae_lightning.backbones.base import ImageShape, check_image_shape

CLASSIFIER_FORMAT = "genae-feature-classifier-v1"


def file_digest(path: str | Path, length: int = 12) -> str:
    """Short blake2b hex digest of a file's content (for cache keys)."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


class SmallClassifier(nn.Module):
    """Two conv blocks, a hidden layer (the features) and a linear head; any image size >= 4x4.

    Args:
        image_shape: (C, H, W) of the training images.
        num_classes: Number of label classes.
        width: Channels of the first conv layer (the second has twice as many).
        num_features: Width of the penultimate layer, whose activations are the FID features.
    """

    def __init__(
        self, image_shape: ImageShape, num_classes: int, width: int = 32, num_features: int = 128
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        if num_classes < 2 or width < 1 or num_features < 1:
            raise ValueError(
                f"SmallClassifier needs num_classes >= 2, width >= 1 and num_features >= 1, got "
                f"num_classes={num_classes}, width={width}, num_features={num_features}"
            )
        self.num_classes, self.width, self.num_features = num_classes, width, num_features
        channels = self.image_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, H/2, ..)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, 32 w)
            nn.Linear(32 * width, num_features), nn.ReLU(),  # (B, F): the FID features
        )
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, (B, C, H, W) -> (B, num_classes)."""
        return self.head(self.features(x))

    def save(self, path: str | Path, **info: object) -> Path:
        """Write weights and architecture (plus ``info``, e.g. test accuracy) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"image_shape": list(self.image_shape), "num_classes": self.num_classes,
                  "width": self.width, "num_features": self.num_features}
        torch.save({"format": CLASSIFIER_FORMAT, "config": config, "info": info,
                    "state_dict": self.state_dict()}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SmallClassifier":
        """Rebuild a classifier written by :meth:`save` (loaded with ``weights_only=True``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"feature classifier {str(path)!r} does not exist; train one with "
                "`genae train-features --data MNIST --data.root DATA --out PATH`"
            )
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("format") != CLASSIFIER_FORMAT:
            raise ValueError(
                f"{str(path)!r} is not a feature classifier written by `genae train-features` "
                f"(expected format {CLASSIFIER_FORMAT!r}); retrain it with that command"
            )
        model = cls(**saved["config"])
        model.load_state_dict(saved["state_dict"])
        return model.eval()


class ClassifierFeatures(nn.Module):
    """FID feature extractor: a trained :class:`SmallClassifier`'s penultimate activations.

    Takes what every FID feature extractor here takes, 3-channel images in [0, 1] of shape
    (B, 3, H, W); for a classifier trained on grayscale images the channels are averaged back
    to one (the exact inverse of the grayscale-to-RGB repetition).

    Args:
        classifier: The trained classifier.
        feature_id: Name of these features in cache keys (e.g. derived from the weights file);
            a hash of the weights when None.
    """

    def __init__(self, classifier: SmallClassifier, feature_id: str | None = None) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_features = classifier.num_features
        self.feature_id = feature_id

    @classmethod
    def from_file(cls, path: str | Path) -> "ClassifierFeatures":
        """Load a classifier file; its content hash becomes part of the feature id."""
        return cls(SmallClassifier.load(path), f"classifier-{file_digest(path)}")

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        """Stay in evaluation mode: the features must not change while they are used."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        """Penultimate features, (B, 3, H, W) in [0, 1] -> (B, num_features)."""
        channels, height, width = self.classifier.image_shape
        if tuple(x.shape[2:]) != (height, width):
            raise ValueError(
                f"this feature classifier was trained on {height}x{width} images, got a batch of "
                f"shape {tuple(x.shape)}; train one on this dataset with `genae train-features`"
            )
        if channels == 1 and x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        return self.classifier.features(x.float())
