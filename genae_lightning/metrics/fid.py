"""FID with torchmetrics' ``FrechetInceptionDistance``, real-image statistics cached on disk.

The real images' feature statistics (sum, sum of outer products, count) are computed once per
dataset, split, subset and feature extractor and kept in memory and in ``cache_dir``; scoring a
sampler then costs only its own features. Images go in as float in [0, 1] (``normalize=True``);
grayscale is repeated to 3 channels, so every feature extractor sees (B, 3, H, W).
"""

import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from genae_lightning.features.extractors import resolve_feature

Reduce = Callable[[Tensor], Tensor]


class FeatureStats(NamedTuple):
    """Sufficient statistics of a set's features: enough for its mean and covariance.

    Attributes:
        total: Sum of the features, (F,), float64.
        outer: Sum of the features' outer products, (F, F), float64.
        count: Number of images, () int64.
    """

    total: Tensor
    outer: Tensor
    count: Tensor


def default_cache_dir() -> Path:
    """``$GENAE_CACHE_DIR/fid``, else ``~/.cache/genae_lightning/fid``."""
    root = os.environ.get("GENAE_CACHE_DIR") or Path.home() / ".cache" / "genae_lightning"
    return Path(root) / "fid"


def to_rgb(images: Tensor) -> Tensor:
    """Float images in [0, 1], (B, 1 or 3, H, W) -> (B, 3, H, W), grayscale repeated, clamped."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"FID takes image batches of shape (B, 1 or 3, H, W) with values in [0, 1], got shape "
            f"{tuple(images.shape)}; pass grayscale or RGB images"
        )
    images = images.float().clamp(0, 1)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class FID:
    """Fréchet distance of image sets to a real set in a feature space (Inception by default).

    Args:
        feature: ``"inception"`` (2048-d pool features; torchmetrics' default), the path of a
            ``genae train-features`` classifier file ("classifier FID", not comparable with
            Inception FID), or any ``nn.Module`` mapping (B, 3, H, W) images in [0, 1] to (B, F).
        feature_extractor_weights_path: A local Inception weights file, for machines without
            network access (default: the torch.hub cache, downloaded on first use).
        cache_dir: Folder for cached real statistics (default: :func:`default_cache_dir`).
        disk_cache: Whether to read and write cached statistics on disk (else memory only).
        input_img_size: (3, H, W) of the images, used to probe a custom module's feature width
            when it has no ``num_features`` attribute.
        allow_download: Whether missing Inception weights may be downloaded.
        progress: Show progress bars while extracting features.
        reduce: Sums a tensor over processes (DDP); the identity on one process.
        write_cache: Whether this process writes cache files (rank zero only under DDP).
    """

    def __init__(
        self,
        feature: str | int | nn.Module = "inception",
        feature_extractor_weights_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        disk_cache: bool = True,
        input_img_size: tuple[int, int, int] = (3, 299, 299),
        allow_download: bool = True,
        progress: bool = True,
        reduce: Reduce | None = None,
        write_cache: bool = True,
    ) -> None:
        extractor, weights, self.feature_id = resolve_feature(
            feature, feature_extractor_weights_path, allow_download
        )
        self.metric = FrechetInceptionDistance(
            feature=extractor,
            reset_real_features=False,
            normalize=True,
            input_img_size=input_img_size,
            feature_extractor_weights_path=None if weights is None else str(weights),
            sync_on_compute=False,  # statistics are summed over processes by ``reduce``
        )
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()
                          ) if disk_cache else None
        self.progress, self.write_cache = progress, write_cache
        self.reduce: Reduce = reduce if reduce is not None else (lambda t: t)
        self._memory: dict[str, FeatureStats] = {}

    def to(self, device: torch.device | str) -> "FID":
        """Move the feature extractor to ``device``; returns self."""
        self.metric.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Device of the feature extractor."""
        return self.metric.device

    @torch.no_grad()
    def statistics(
        self, batches: Iterable[Tensor], desc: str = "FID features", total: int | None = None
    ) -> FeatureStats:
        """Feature statistics of image batches (summed over processes)."""
        metric = self.metric
        metric.reset()  # clears the fake slot, which every set passes through
        for images in tqdm(batches, desc=desc, total=total, disable=not self.progress, leave=False):
            metric.update(to_rgb(images).to(self.device), real=False)
        return FeatureStats(
            self.reduce(metric.fake_features_sum.clone()),
            self.reduce(metric.fake_features_cov_sum.clone()),
            self.reduce(metric.fake_features_num_samples.clone()),
        )

    def real_statistics(
        self, key: str, batches: Callable[[], Iterable[Tensor]], total: int | None = None
    ) -> FeatureStats:
        """Statistics of the real set called ``key``: from memory, the disk cache, or computed.

        Args:
            key: Names the images (dataset, split, subset, content hash); the feature
                extractor's id is added here.
            batches: Makes the iterable of real image batches; called only on a cache miss.
            total: Number of batches, for the progress bar.
        """
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{key}-{self.feature_id}")
        if name in self._memory:
            return self._memory[name]
        path = None if self.cache_dir is None else self.cache_dir / f"{name}.pt"
        found = path is not None and path.is_file()
        # every process must take the same branch: computing the statistics is a collective
        if int(self.reduce(torch.tensor(0 if found else 1)).item()) == 0:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            stats = FeatureStats(saved["total"], saved["outer"], saved["count"])
        else:
            stats = self.statistics(batches(), desc=f"FID features (real, {key})", total=total)
            if path is not None and self.write_cache:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.tmp")
                torch.save({k: v.cpu() for k, v in stats._asdict().items()}, partial)
                partial.replace(path)  # atomic: readers never see half a file
        self._memory[name] = stats
        return stats

    def distance(self, real: FeatureStats, fake: FeatureStats) -> float:
        """FID between two sets given their statistics (NaN if ``fake`` is not finite)."""
        if not (torch.isfinite(fake.total).all() and torch.isfinite(fake.outer).all()):
            warnings.warn("FID: the generated images' features are not finite (NaN or inf "
                          "images?); reporting NaN", stacklevel=2)
            return float("nan")
        metric = self.metric
        metric.reset()
        device = self.device
        metric.real_features_sum, metric.real_features_cov_sum, metric.real_features_num_samples = (
            t.to(device) for t in real
        )
        metric.fake_features_sum, metric.fake_features_cov_sum, metric.fake_features_num_samples = (
            t.to(device) for t in fake
        )
        if not hasattr(metric, "orig_dtype"):  # set by update(); unset if no image passed here
            metric.orig_dtype = torch.float32
        with warnings.catch_warnings():  # states are set directly, not through update()
            warnings.filterwarnings("ignore", message=".*compute.* was called before .*update")
            return float(metric.compute())

    def score(
        self, real: FeatureStats, batches: Iterable[Tensor], desc: str = "FID features",
        total: int | None = None,
    ) -> float:
        """FID of image batches against the real statistics."""
        return self.distance(real, self.statistics(batches, desc, total))
