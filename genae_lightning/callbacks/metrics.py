"""Live evaluation during training: FID of reconstructions and samplers, 5-NN accuracy, SSE."""

from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_deprecation, rank_zero_info, rank_zero_warn
from torch import nn
from torch.utils.data import Dataset

from genae_lightning.distributed import Collective
from genae_lightning.latents import SAMPLERS
from genae_lightning.latents.batchnorm import batchnorm_layers
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative
from genae_lightning.priors import Prior


def epoch_due(trainer: L.Trainer, every_n_epochs: int | None) -> bool:
    """Whether a periodic callback runs at the end of this training epoch.

    Never on the last epoch (the end-of-fit run covers it) nor when ``every_n_epochs`` is None/0.
    """
    if not every_n_epochs or (trainer.current_epoch + 1) % every_n_epochs:
        return False
    last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
    last_epoch = 0 < max_epochs <= trainer.current_epoch + 1
    return not (last_step or last_epoch or trainer.should_stop)


def evaluation_datasets(trainer: L.Trainer, split: str) -> tuple[Dataset, Dataset]:
    """The DataModule's training dataset and its ``split`` ("test" or "val") dataset."""
    datamodule = trainer.datamodule
    train = getattr(datamodule, "train_dataset", None)
    evaluation = getattr(datamodule, f"{split}_dataset", None)
    if train is None or evaluation is None:
        raise ValueError(
            f"evaluation callbacks read `train_dataset` and `{split}_dataset` from the DataModule "
            f"after setup, but {type(datamodule).__name__} has "
            f"{'no DataModule' if datamodule is None else 'none'}; train with a "
            "genae_lightning.data DataModule (trainer.fit(model, datamodule=...))"
        )
    return train, evaluation


class GenerativeMetrics(L.Callback):
    """Every n epochs and at the end of fit, log FID, 5-NN accuracy and reconstruction SSE.

    Logged keys (to every configured logger, and into ``trainer.callback_metrics``):
    ``fid/recon`` (reconstructions of the evaluation images), ``fid/prior`` (the method's own
    prior), ``fid/gaussian`` and ``fid/gmm`` (post-hoc samplers), ``knn/acc`` and
    ``val/rec_sse`` (mean per-image sum of squared errors; computed on ``split``, the test split
    by default like the papers' tables, and logged beside ``val/rec_mse``). The FID keys name
    the feature extractor's family (:func:`~genae_lightning.metrics.fid.fid_prefix`):
    ``fid/*`` with Inception, ``cfid/*`` (classifier FID) with a ``genae train-features``
    classifier, ``fid_<id>/*`` with any other feature module.

    At the end of fit the post-hoc priors of :class:`FitLatentPrior` are used when that callback
    runs first (list it before this one); mid-training, temporary ones are fitted to the
    training codes. Under DDP every process takes a share of the images; features, codes and
    sums are gathered across processes.

    The model is evaluated in eval mode, with BatchNorm's running statistics as they are:
    mid-training the training's moving averages, at the end of fit those that
    :class:`FitLatentPrior`'s check kept or recomputed when it runs first. Models with BatchNorm
    also log ``batchnorm/recalibrated_stats``: 1 when the statistics used were recomputed by
    that check, 0 when they are the training's moving averages.

    When FID's feature extractor is unavailable (Inception weights neither cached nor
    downloadable) FID is switched off with a warning saying how to fix it, and KNN accuracy and
    SSE are still logged; ``strict=True`` makes that an error instead. The features used are
    said once in the log, with the keys they are logged under, and logged as the hyperparameter
    ``fid_feature`` (e.g. ``inception2048``, a classifier's id, or ``none``); FIDs of different
    extractors never share a key (``genae fit --fid_feature <classifier.pt>`` picks a classifier
    instead).

    Args:
        every_n_epochs: Run after every n-th training epoch (None or 0: only at the end of fit).
        num_samples: Evaluation images and samples per sampler (papers: 5k to 10k).
        knn_train_samples: Training images encoded for KNN (and temporary priors); all if None.
        k: Neighbours of the KNN classifier.
        samplers: Which samplers to score: "prior", "gaussian", "gmm".
        fid_feature: FID features: "inception", the path of a ``genae train-features``
            classifier (classifier FID, not comparable with Inception FID), or an ``nn.Module``.
            ``genae fit --fid_feature`` sets it on every ``GenerativeMetrics`` of a run.
        feature_extractor_weights_path: A local Inception weights file.
        cache_dir: Folder of cached real statistics (default ``~/.cache/genae_lightning/fid``,
            or ``$GENAE_CACHE_DIR/fid``).
        split: Evaluation split of the DataModule: "test" or "val".
        batch_size: Batch size of the evaluation.
        n_components: Components of temporary GMMs.
        seed: Seed of the samples and temporary GMMs.
        strict: Raise instead of warning when FID's feature extractor is unavailable.
        progress: Show progress bars.
        feature: Deprecated name of ``fid_feature`` (the run configs of earlier versions use it).

    Attributes:
        fid_feature_id: The id of the FID features used (``FID.feature_id``, e.g.
            ``inception2048``; ``"none"``: FID switched off), set in ``setup``: what the loggers
            and ``evaluation.json`` record as ``fid_feature``.
    """

    def __init__(
        self,
        every_n_epochs: int | None = 10,
        num_samples: int = 10_000,
        knn_train_samples: int | None = 10_000,
        k: int = 5,
        samplers: tuple[str, ...] = SAMPLERS,
        fid_feature: str | nn.Module = "inception",
        feature_extractor_weights_path: str | None = None,
        cache_dir: str | None = None,
        split: Literal["test", "val"] = "test",
        batch_size: int = 256,
        n_components: int = 10,
        seed: int = 0,
        strict: bool = False,
        progress: bool = True,
        feature: str | nn.Module | None = None,
    ) -> None:
        if feature is not None:
            rank_zero_deprecation("GenerativeMetrics(feature=...) is deprecated: it is now named "
                                  "`fid_feature` (the name genae fit and evaluate use too)")
            fid_feature = feature
        self.every_n_epochs = every_n_epochs
        self.config = MetricsConfig(num_samples, knn_train_samples, k, tuple(samplers),
                                    n_components, batch_size, seed, progress)
        self.fid_feature, self.weights_path = fid_feature, feature_extractor_weights_path
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.split, self.strict = split, strict
        self.fid: FID | None = None
        self.fid_feature_id: str | None = None
        self.latest_priors: dict[str, Prior] = {}  # temporary post-hoc priors of the last run
        self.latest: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Build the FID scorer once (fails early, or warns, if its features are unavailable)."""
        if stage != "fit" or self.fid is not None:
            return
        evaluation_datasets(trainer, self.split)  # fail before training, not after
        channels, height, width = trainer.datamodule.image_shape
        collective = Collective(trainer.strategy)
        try:
            self.fid = FID(
                self.fid_feature, self.weights_path, self.cache_dir,
                input_img_size=(3, height, width),
                progress=self.config.progress and collective.is_main,
            )
        except FileNotFoundError as err:
            if self.strict:
                raise
            rank_zero_warn(f"GenerativeMetrics: FID is switched off for this run (knn/acc and "
                           f"val/rec_sse are still logged). {err}")
        self.fid_feature_id = "none" if self.fid is None else self.fid.feature_id
        keys = "" if self.fid is None else f" (logged as {self.fid.prefix}/*)"
        rank_zero_info(f"GenerativeMetrics: FID features of this run: {self.fid_feature_id}"
                       f"{keys}")
        for logger in trainer.loggers:  # runs of different extractors stay apart
            logger.log_hyperparams({"fid_feature": self.fid_feature_id})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Evaluate every ``every_n_epochs`` epochs."""
        if epoch_due(trainer, self.every_n_epochs):
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Evaluate the final model (with FitLatentPrior's priors if it ran before)."""
        self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute the metrics now and log them at the current global step."""
        train, evaluation = evaluation_datasets(trainer, self.split)
        if self.fid is not None:
            self.fid.to(pl_module.device)
        collective = Collective(trainer.strategy)
        collective.sync_buffers(pl_module)  # every process evaluates rank 0's model
        result = evaluate_generative(
            pl_module, train, evaluation, self.fid, self.config,
            dataset_name=type(trainer.datamodule).__name__, split=self.split,
            collective=collective,
        )
        if batchnorm_layers(pl_module):  # which BatchNorm statistics these numbers used
            check = getattr(pl_module, "batchnorm_check", None)
            result.metrics["batchnorm/recalibrated_stats"] = float(
                bool(check and check["recalibrated"]))
        self.latest_priors, self.latest = result.fitted_priors, result.metrics
        for logger in trainer.loggers:
            logger.log_metrics(result.metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in result.metrics.items()})
        return result.metrics
