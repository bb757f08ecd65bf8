"""One evaluation of a trained method: FID of reconstructions and samplers, 5-NN accuracy, SSE.

Shared by the ``GenerativeMetrics`` callback (live, during training) and ``genae evaluate``
(one checkpoint), so both report the same numbers under the same names (FID keys carry the
feature extractor: ``fid/`` for Inception, ``cfid/`` for a classifier, ``fid_<id>/`` for another
module; see :func:`~genae_lightning.metrics.fid.fid_prefix`):

- ``fid/recon``: FID of the reconstructions of the first ``num_samples`` evaluation images;
- ``fid/prior``, ``fid/gaussian``, ``fid/gmm``: FID of ``num_samples`` samples of each sampler;
- ``knn/acc``: accuracy of a k-NN classifier (k=5) fitted on training codes, on evaluation codes;
- ``val/rec_sse``: mean over images of the sum of squared reconstruction errors (SWAE, table 3).
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from genae_lightning.distributed import Collective
from genae_lightning.functional.precision import to_module
from genae_lightning.latents.encode import encode_dataset
from genae_lightning.latents.samplers import (
    SAMPLERS,
    check_samplers,
    posthoc_priors,
    sample_batches,
)
from genae_lightning.metrics.fid import FID
from genae_lightning.metrics.knn import KNNAccuracy
from genae_lightning.metrics.sse import ReconstructionSSE
from genae_lightning.priors import Prior


@dataclass
class MetricsConfig:
    """What to compute, and on how many images.

    Attributes:
        num_samples: Evaluation images (reconstruction FID, SSE, KNN test codes) and samples per
            sampler (the papers use 5k to 10k).
        knn_train_samples: Training images encoded for the KNN classifier and for fitting
            missing post-hoc priors; all when None.
        k: Neighbours of the KNN classifier.
        samplers: Samplers to score: any of "prior", "gaussian", "gmm".
        n_components: Components of a GMM fitted here (when the module has none).
        batch_size: Batch size for encoding, decoding and feature extraction.
        seed: Seed of the samples and of fitted GMMs.
        progress: Show progress bars (rank zero only).
    """

    num_samples: int = 10_000
    knn_train_samples: int | None = 10_000
    k: int = 5
    samplers: tuple[str, ...] = SAMPLERS
    n_components: int = 10
    batch_size: int = 256
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.num_samples < 2 or self.batch_size < 1 or self.k < 1:
            raise ValueError(f"need num_samples >= 2, batch_size >= 1 and k >= 1, got "
                             f"num_samples={self.num_samples}, batch_size={self.batch_size}, "
                             f"k={self.k}")
        self.samplers = tuple(self.samplers)
        check_samplers(self.samplers)


@dataclass
class Evaluation:
    """What :func:`evaluate_generative` returns.

    Attributes:
        metrics: ``{"fid/recon": ..., "knn/acc": ..., ...}`` (``cfid/recon`` with a classifier).
        fitted_priors: Post-hoc priors fitted here because the module had none (temporary).
        num_images: Evaluation images used (a multiple of the number of processes).
    """

    metrics: dict[str, float]
    fitted_priors: dict[str, Prior] = field(default_factory=dict)
    num_images: int = 0


def _images_and_labels(batch: object) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None  # type: ignore[return-value]


def images_digest(loader: DataLoader) -> str:
    """Short hash of every image a loader yields: the content part of a real-statistics key."""
    digest = hashlib.blake2b(digest_size=16)
    for batch in loader:
        digest.update(_images_and_labels(batch)[0].float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _reconstructions(
    module: L.LightningModule, loader: DataLoader, knn: KNNAccuracy, sse: ReconstructionSSE,
) -> Iterator[Tensor]:
    """Yield reconstructions batch by batch, updating the KNN (labelled codes) and SSE metrics."""
    for batch in loader:
        x, y = _images_and_labels(batch)
        x = to_module(x, module)
        z = module.encode(x)  # (B, d)
        x_hat = module.reconstruct(x)  # (B, C, H, W)
        sse.update(x, x_hat)
        if y is not None:
            knn.update(z.float(), y.to(z.device), train=False)
        yield x_hat


def _training_codes(
    module: L.LightningModule, train: Dataset, config: MetricsConfig, collective: Collective,
    progress: bool,
) -> tuple[Tensor, Tensor | None]:
    """This process's share of the training codes and their labels (None if unlabelled)."""
    n = len(train) if config.knn_train_samples is None else min(config.knn_train_samples,
                                                                 len(train))
    loader = DataLoader(Subset(train, collective.shard(n)), batch_size=config.batch_size)
    codes = encode_dataset(module, loader, progress=progress)
    labels = [y for y in (_images_and_labels(b)[1] for b in loader) if y is not None]
    return codes, (torch.cat(labels) if labels else None)


@torch.no_grad()
def evaluate_generative(
    module: L.LightningModule,
    train: Dataset,
    test: Dataset,
    fid: FID | None,
    config: MetricsConfig | None = None,
    dataset_name: str = "data",
    split: str = "test",
    collective: Collective | None = None,
) -> Evaluation:
    """Compute the metrics of a trained method on ``test`` (FID only when ``fid`` is given).

    Args:
        module: A trained :class:`~genae_lightning.methods.GenerativeAutoencoder`.
        train: Training images (KNN training codes; post-hoc priors when the module has none).
        test: Evaluation images, batches ``(x, y)`` with x in [0, 1].
        fid: The FID scorer, or None to skip every FID.
        config: Sample counts and settings; ``MetricsConfig()`` when None.
        dataset_name: Names the data in the key of the cached real statistics.
        split: Names the split in that key.
        collective: Splits work over DDP processes; one process when None.

    Returns:
        The metrics, the post-hoc priors fitted here, and the number of evaluation images.
    """
    config = config or MetricsConfig()
    collective = collective or Collective()
    progress = config.progress and collective.is_main
    shard = Subset(test, collective.shard(min(config.num_samples, len(test))))
    num_images = len(shard) * collective.world_size
    if num_images < 2:
        raise ValueError(f"need at least 2 evaluation images per run, got {num_images} (split "
                         f"{split!r} has {len(test)} images, {collective.world_size} process(es))")
    loader = DataLoader(shard, batch_size=config.batch_size)
    was_training = module.training
    module.eval()
    try:
        metrics: dict[str, float] = {}
        if fid is not None:
            everything = DataLoader(Subset(test, range(num_images)), batch_size=config.batch_size)
            key = f"{dataset_name}-{split}-n{num_images}-{images_digest(everything)}"
            fid.set_real(lambda: (_images_and_labels(b)[0] for b in loader), key, len(loader))
        knn = KNNAccuracy(config.k).to(module.device)  # states summed/gathered over processes
        sse = ReconstructionSSE().to(module.device)
        recon = tqdm(_reconstructions(module, loader, knn, sse), total=len(loader),
                     desc="reconstructing", disable=not progress or fid is not None, leave=False)
        if fid is not None:
            metrics[f"{fid.prefix}/recon"] = fid.score(recon, "FID features (reconstructions)",
                                                       len(loader))
        else:
            for _ in recon:
                pass
        metrics["val/rec_sse"] = float(sse.compute())
        train_codes, train_labels = _training_codes(module, train, config, collective, progress)
        if knn.test_labels and train_labels is not None:
            knn.update(train_codes.to(module.device), train_labels.to(module.device), train=True)
            metrics["knn/acc"] = float(knn.compute())
        train_codes = collective.cat(train_codes)  # every process fits the priors on all codes
        fitted: dict[str, Prior] = {}
        if fid is not None:
            fitted = posthoc_priors(module, train_codes, config.samplers, config.n_components,
                                    config.seed, progress)
            for sampler in config.samplers:
                generator = torch.Generator().manual_seed(config.seed + collective.rank)
                batches = sample_batches(module, sampler, len(shard), config.batch_size,
                                         generator, fitted)
                metrics[f"{fid.prefix}/{sampler}"] = fid.score(
                    batches, f"FID features ({sampler} samples)", len(loader)
                )
        return Evaluation(metrics, fitted, num_images)
    finally:
        module.train(was_training)
