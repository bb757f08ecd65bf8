"""FID: torchmetrics' ``FrechetInceptionDistance`` with real-image statistics cached on disk.

The real images' feature statistics (sum, sum of outer products, count) are computed once per
dataset, split, subset and feature extractor and kept in memory and in ``cache_dir``; scoring a
sampler then costs only its own features. Images go in as float in [0, 1] (``normalize=True``);
grayscale is repeated to 3 channels, so every feature extractor sees (B, 3, H, W).

Under DDP each process updates the metric with its share of the images and torchmetrics sums the
states over processes when computing (``sync_on_compute``); cached real statistics, which are
already totals, are loaded on rank zero only.

Metric keys carry the feature extractor's family (:func:`fid_prefix`): ``fid/<kind>`` for
Inception (the papers' FID), ``cfid/<kind>`` for a ``genae train-features`` classifier, and
``fid_<id>/<kind>`` for any other feature module, so FIDs of different extractors never share a
key.
"""

import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.utilities.distributed import gather_all_tensors
from tqdm.auto import tqdm

from genae_lightning.features.extractors import resolve_feature
from genae_lightning.functional.frechet import frechet_distance, gaussian_moments

Batches = Iterable[Tensor] | Callable[[], Iterable[Tensor]]


class FeatureStats(NamedTuple):
    """Sufficient statistics of a set's features: enough for its mean and covariance.

    The cache files hold these three tensors under the same names.

    Attributes:
        total: Sum of the features, (F,), float64.
        outer: Sum of the features' outer products, (F, F), float64.
        count: Number of images, () int64.
    """

    total: Tensor
    outer: Tensor
    count: Tensor


INCEPTION_ID = re.compile(r"inception\d+(-[0-9a-f]+)?")
CLASSIFIER_ID = re.compile(r"(classifier|ClassifierFeatures)-[0-9a-f]+")
FID_KEY = re.compile(r"(fid|cfid|fid_[a-z0-9_.-]+)/([^/]+)")


def fid_prefix(feature_id: str) -> str:
    """Metric-key prefix of FIDs computed with the features ``feature_id`` (``FID.feature_id``).

    ``"fid"`` for Inception (``inception2048``, ``inception2048-<hash>``: the papers' FID),
    ``"cfid"`` for a classifier (``classifier-<hash>``: classifier FID), and ``"fid_<id>"``
    (lowercase, only ``[a-z0-9_.-]``) for any other feature module. Keys are
    ``f"{fid_prefix(feature_id)}/{kind}"``, e.g. ``cfid/gmm``.

    Examples:
        >>> fid_prefix("inception2048"), fid_prefix("classifier-0123abcd")
        ('fid', 'cfid')
        >>> fid_prefix("Sequential-4f2a9c01b3de")
        'fid_sequential-4f2a9c01b3de'
    """
    if INCEPTION_ID.fullmatch(feature_id):
        return "fid"
    if CLASSIFIER_ID.fullmatch(feature_id):
        return "cfid"
    return "fid_" + re.sub(r"[^a-z0-9_.-]+", "_", feature_id.lower())


def split_fid_key(key: str) -> tuple[str, str] | None:
    """``"cfid/gmm"`` -> ``("cfid", "gmm")``; None when ``key`` is not an FID key."""
    match = FID_KEY.fullmatch(key)
    return None if match is None else (match.group(1), match.group(2))


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


class FID(FrechetInceptionDistance):
    """Fréchet distance of image sets to a real set in a feature space (Inception by default).

    A torchmetrics metric: ``update(images, real=...)`` then ``compute()``; ``reset()`` keeps the
    real set. :meth:`set_real` fills the real set (from the cache when it can) and :meth:`score`
    scores one generated set against it. The functional twin is
    :func:`~genae_lightning.functional.frechet_distance`.

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
        **kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ``process_group``, ...).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> fid = FID(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), disk_cache=False,
        ...           input_img_size=(3, 8, 8), progress=False)
        >>> real = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> fid.set_real([real])
        >>> abs(fid.score([real])) < 1e-4  # a set against itself
        True
        >>> fid.score([real.flip(0) * 0.5]) > 0.01
        True
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
        **kwargs: Any,
    ) -> None:
        extractor, weights, feature_id = resolve_feature(
            feature, feature_extractor_weights_path, allow_download
        )
        super().__init__(
            feature=extractor,
            reset_real_features=False,
            normalize=True,
            input_img_size=input_img_size,
            feature_extractor_weights_path=None if weights is None else str(weights),
            **kwargs,
        )
        self.feature_id = feature_id
        self.prefix = fid_prefix(feature_id)  # of its metric keys: fid, cfid or fid_<id>
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()
                          ) if disk_cache else None
        self.progress = progress
        self._memory: dict[str, FeatureStats] = {}

    @torch.no_grad()
    def update(self, imgs: Tensor, real: bool) -> None:
        """Add a batch of images in [0, 1], (B, 1 or 3, H, W), to the real or the generated set."""
        super().update(to_rgb(imgs).to(self.device), real)

    def compute(self) -> Tensor:
        """FID of the generated set to the real set (NaN, with a warning, if it is not finite)."""
        fake = (self.fake_features_sum, self.fake_features_cov_sum)
        if not all(torch.isfinite(t).all() for t in fake):
            # stacklevel 3: past torchmetrics' compute wrapper, the code that asked for the FID
            warnings.warn("FID: the generated images' features are not finite (NaN or inf "
                          "images?); reporting NaN", stacklevel=3)
            return torch.tensor(float("nan"))
        n_real, n_fake = int(self.real_features_num_samples), int(self.fake_features_num_samples)
        if n_real < 2 or n_fake < 2:
            raise RuntimeError(
                f"FID needs at least 2 real and 2 generated images, got {n_real} real and "
                f"{n_fake} generated; fill the real set with set_real(...) (or update(x, "
                f"real=True)) and pass at least 2 generated images"
            )
        mu_real, sigma_real = gaussian_moments(self.real_features_sum, self.real_features_cov_sum,
                                               self.real_features_num_samples)
        mu_fake, sigma_fake = gaussian_moments(self.fake_features_sum, self.fake_features_cov_sum,
                                               self.fake_features_num_samples)
        return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake).to(self.orig_dtype)

    def score(self, batches: Iterable[Tensor], desc: str = "FID features",
              total: int | None = None) -> float:
        """FID of image batches against the real set (this process's share under DDP)."""
        self.reset()  # clears the generated set only
        for images in tqdm(batches, desc=desc, total=total, disable=not self.progress, leave=False):
            self.update(images, real=False)
        return float(self.compute())

    def set_real(self, batches: Batches, key: str | None = None, total: int | None = None) -> None:
        """Make ``batches`` (this process's share under DDP) the real set.

        Args:
            batches: Real image batches, or a function making them (called only when needed).
            key: Names the images (dataset, split, subset, content hash) for the cache; the
                feature extractor's id is added here. Without a key nothing is cached.
            total: Number of batches, for the progress bar.
        """
        name = None if key is None else re.sub(r"[^A-Za-z0-9_.=-]+", "_",
                                                f"{key}-{self.feature_id}")
        path = None if name is None or self.cache_dir is None else self.cache_dir / f"{name}.pt"
        if name is not None and name not in self._memory and self._found_everywhere(path):
            saved = torch.load(path, map_location="cpu", weights_only=True)
            self._memory[name] = FeatureStats(saved["total"], saved["outer"], saved["count"])
        if name is not None and name in self._memory:
            self._load_real(self._memory[name])
            return
        self._load_real(None)
        images = batches() if callable(batches) else batches
        for x in tqdm(images, desc=f"FID features (real{'' if key is None else ', ' + key})",
                      total=total, disable=not self.progress, leave=False):
            self.update(x, real=True)
        self.reset()  # the real set stays
        if name is None:
            return
        with self.sync_context(should_unsync=True):  # totals over processes
            stats = FeatureStats(self.real_features_sum.cpu().clone(),
                                 self.real_features_cov_sum.cpu().clone(),
                                 self.real_features_num_samples.cpu().clone())
        self._memory[name] = stats
        if path is not None and self._rank() == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(stats._asdict(), partial)
            partial.replace(path)  # atomic: readers never see half a file

    def _load_real(self, stats: FeatureStats | None) -> None:
        """Set the real states to ``stats`` (totals: on rank zero only), or zero them."""
        states = (self.real_features_sum, self.real_features_cov_sum,
                  self.real_features_num_samples)
        if stats is None or self._rank() != 0:
            stats = FeatureStats(*(torch.zeros_like(t) for t in states))
        self.real_features_sum, self.real_features_cov_sum, self.real_features_num_samples = (
            new.to(old) for new, old in zip(stats, states, strict=True)
        )
        self.reset()  # clears the generated set and any computed value; the real set stays

    def _distributed(self) -> bool:
        return bool(self.distributed_available_fn())

    def _rank(self) -> int:
        return torch.distributed.get_rank(self.process_group) if self._distributed() else 0

    def _found_everywhere(self, path: Path | None) -> bool:
        """Whether every process sees the cache file (all must take the same branch)."""
        found = torch.tensor(int(path is not None and path.is_file()), device=self.device)
        if self._distributed():
            found = torch.stack(gather_all_tensors(found, self.process_group)).min()
        return bool(found)
