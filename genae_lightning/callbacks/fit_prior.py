"""Fit post-hoc latent priors (full Gaussian, GMM) to the encoded training set.

Under DDP every process encodes its share of the training set, the codes are gathered in the
dataset's order, rank 0 fits the priors and broadcasts them: every process ends with the priors
one process would fit on the whole set.

Before encoding, the BatchNorm running statistics are checked against the batch statistics (see
:func:`~genae_lightning.latents.batchnorm.settle_batchnorm`) and recomputed where they lag.
"""

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from genae_lightning.callbacks.reliability import was_interrupted
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.distributed import Collective
from genae_lightning.latents.batchnorm import (
    DEFAULT_BATCHES,
    DEFAULT_CHECK_SAMPLES,
    DEFAULT_TOLERANCE,
    BatchNormMode,
    batchnorm_layers,
    describe,
    fixed_batches,
    recalibration_loader,
    settle_batchnorm,
)
from genae_lightning.latents.encode import encode_dataset, encode_dataset_distributed
from genae_lightning.priors import fit_posthoc_prior, prior_from_state
from genae_lightning.priors.base import Prior


class FitLatentPrior(L.Callback):
    """After training, fit a full-covariance Gaussian and a GMM to the encoded training set.

    The fitted priors live on the module (``model.sample(n, prior="gmm")``) and in its checkpoints:
    after fitting, the last checkpoint of every ``ModelCheckpoint`` and each of its best and
    top-k files that holds the final weights are written again, through the trainer's
    checkpoint IO (atomic with ``SafeCheckpointIO``), so that they hold them; a best or top-k
    file of an earlier step (a best checkpoint of an earlier epoch) cannot get priors fitted to
    other weights and is named in a warning (see :meth:`write_priors_into_checkpoints`).

    Args:
        n_components: GMM components (the InjFlow paper: 10, full covariances).
        max_samples: Encode at most this many training images (all when None).
        batch_size: Batch size for encoding.
        seed: Seed of the GMM's initialisation.
        priors: Which post-hoc priors to fit.
        batchnorm: Before encoding, compare the reconstruction error of
            ``batchnorm_check_samples`` fixed validation images with BatchNorm's batch
            statistics (train mode, running statistics untouched) and with its running
            statistics (eval mode). "auto" recomputes the running statistics exactly over
            ``batchnorm_batches`` training batches when the two differ by more than
            ``batchnorm_tolerance`` (relative); "always" recomputes them; "never" only checks.
            Both errors and the decision are logged (``batchnorm/*``) and recorded in the
            checkpoint (``checkpoint["genae"]["batchnorm"]``). Models without BatchNorm skip it.
        batchnorm_tolerance: Relative difference |eval - train| / train that triggers "auto"
            (docs/benchmarks.md: up to 0.1 for an AE whose statistics keep up, 3 and more for a
            lagging InjFlow).
        batchnorm_batches: Training batches of the recalibration (of the training batch size;
            split over the processes under DDP).
        batchnorm_check_samples: Validation images of the check (the first ones).
    """

    def __init__(
        self,
        n_components: int = 10,
        max_samples: int | None = None,
        batch_size: int = 512,
        seed: int = 0,
        priors: tuple[str, ...] = ("gaussian", "gmm"),
        batchnorm: BatchNormMode = "auto",
        batchnorm_tolerance: float = DEFAULT_TOLERANCE,
        batchnorm_batches: int = DEFAULT_BATCHES,
        batchnorm_check_samples: int = DEFAULT_CHECK_SAMPLES,
    ) -> None:
        if batchnorm not in ("auto", "always", "never"):
            raise ValueError(f"FitLatentPrior(batchnorm=...) must be 'auto', 'always' or "
                             f"'never', got {batchnorm!r}")
        if batchnorm_batches < 1 or batchnorm_check_samples < 1:
            raise ValueError(
                f"FitLatentPrior needs batchnorm_batches >= 1 and batchnorm_check_samples >= 1, "
                f"got {batchnorm_batches} and {batchnorm_check_samples}")
        self.n_components, self.max_samples = n_components, max_samples
        self.batch_size, self.seed, self.priors = batch_size, seed, tuple(priors)
        self.batchnorm, self.batchnorm_tolerance = batchnorm, batchnorm_tolerance
        self.batchnorm_batches, self.batchnorm_check_samples = (batchnorm_batches,
                                                                batchnorm_check_samples)

    def fit_module(
        self, module: L.LightningModule, loader: DataLoader, progress: bool = True
    ) -> None:
        """Encode ``loader`` and store the fitted priors on ``module`` (the "on demand" entry)."""
        z = encode_dataset(module, loader, self.max_samples, progress)
        for name, prior in self._fit(z).items():
            module.set_posthoc_prior(name, prior)

    def _fit(self, z: Tensor) -> dict[str, Prior]:
        return {name: fit_posthoc_prior(name, z, self.n_components, self.seed)
                for name in self.priors}

    def _fit_distributed(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Encode the training set over all processes; rank 0 fits, every process stores."""
        strategy = trainer.strategy
        dataset: Dataset | None = getattr(trainer.datamodule, "train_dataset", None)
        if dataset is None:
            dataset = getattr(trainer.train_dataloader, "dataset", None)
        if dataset is None:
            raise RuntimeError(
                "FitLatentPrior needs the training set: fit with a DataModule that has a "
                "train_dataset, or a training DataLoader"
            )
        z = encode_dataset_distributed(pl_module, dataset, strategy, self.batch_size,
                                       self.max_samples, progress=trainer.is_global_zero)
        # one fit, on rank 0; the same priors everywhere, so sampling and metrics agree
        fitted = self._fit(z) if strategy.is_global_zero else {}
        if strategy.world_size > 1:
            states = strategy.broadcast({k: p.state_dict() for k, p in fitted.items()}, src=0)
            fitted = {name: prior_from_state(name, state) for name, state in states.items()}
            for name, prior in fitted.items():
                prior.load_state_dict(states[name])  # rank 0's values, bit for bit
        for name, prior in fitted.items():
            pl_module.set_posthoc_prior(name, prior)

    def settle_batchnorm(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, Any] | None:
        """Check (and where needed recompute) the BatchNorm statistics; log and record it."""
        if not batchnorm_layers(pl_module):
            return None
        datamodule = trainer.datamodule
        train: Dataset | None = getattr(datamodule, "train_dataset", None)
        if train is None:
            train = getattr(trainer.train_dataloader, "dataset", None)
        if train is None:
            raise RuntimeError("FitLatentPrior's BatchNorm check needs the training set: fit "
                               "with a DataModule that has a train_dataset, or pass "
                               "FitLatentPrior(batchnorm='never')")
        held_out: Dataset | None = getattr(datamodule, "val_dataset", None)
        split = "val" if held_out is not None else "train"
        batch_size = int(getattr(datamodule, "batch_size", None) or self.batch_size)
        check = fixed_batches(held_out if held_out is not None else train,
                              self.batchnorm_check_samples, batch_size)
        strategy = trainer.strategy
        world, rank = strategy.world_size, strategy.global_rank
        share = Subset(train, range(rank, len(train), world))  # type: ignore[arg-type]
        record = settle_batchnorm(
            pl_module, check, recalibration_loader(share, batch_size, self.seed + rank),
            self.batchnorm, self.batchnorm_tolerance, -(-self.batchnorm_batches // world),
            reduce=Collective(strategy).sum if world > 1 else None,
        )
        assert record is not None  # the module has BatchNorm layers
        record.update(split=split, check_samples=sum(len(x) for x in check),
                      step=trainer.global_step)
        pl_module.batchnorm_check = record
        rank_zero_info(f"FitLatentPrior: {describe(record)}")
        metrics = {"batchnorm/train_error": record["train_error"],
                   "batchnorm/eval_error": record["eval_error"],
                   "batchnorm/recalibrated": float(record["recalibrated"])}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        return record

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Forget the check of an earlier fit (a resumed run trains further)."""
        pl_module.batchnorm_check = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Settle BatchNorm, fit the priors, then rewrite the kept checkpoints to include them."""
        if was_interrupted(trainer):  # the run will resume; fit at its real end
            return
        # every process checks, encodes and evaluates rank 0's model (the one it checkpoints);
        # with each process's own BatchNorm statistics the BatchNorm check could decide
        # differently on each and the recalibration's collectives would deadlock
        Collective(trainer.strategy).sync_buffers(pl_module)
        self.settle_batchnorm(trainer, pl_module)
        self._fit_distributed(trainer, pl_module)
        self.write_priors_into_checkpoints(trainer)

    def write_priors_into_checkpoints(self, trainer: L.Trainer) -> list[Path]:
        """Rewrite every kept checkpoint of the final weights so it holds the fitted priors.

        The files are every ``ModelCheckpoint``'s ``last_model_path``, ``best_model_path`` and
        ``best_k_models`` that exist. The ``last`` file (the run's latest state) and every file
        saved at the trainer's final ``global_step`` (the weights the priors were fitted to) are
        written again with ``trainer.save_checkpoint`` (all processes take part; rank 0 decides
        which files). A best or top-k file of an earlier step is left as it is and named in a
        warning.

        Returns:
            The files written again.
        """
        current, earlier = ([], []) if not trainer.is_global_zero else kept_checkpoints(trainer)
        current, earlier = trainer.strategy.broadcast((current, earlier), src=0)
        for path in current:
            trainer.save_checkpoint(path)
        if earlier:
            names = ", ".join(f"{str(path)!r} (step {step})" for path, step in earlier)
            rank_zero_warn(
                f"FitLatentPrior fitted the post-hoc priors to the weights of step "
                f"{trainer.global_step}; these kept checkpoints hold weights of earlier steps and "
                f"do not contain them: {names}. Sample them with --prior standard, or fit the "
                "priors to one after loading it: FitLatentPrior().fit_module(model, "
                "train_dataloader), then save it"
            )
        return [Path(p) for p in current]


def kept_checkpoints(trainer: L.Trainer) -> tuple[list[Path], list[tuple[Path, int]]]:
    """The existing files of every ``ModelCheckpoint``: those to rewrite, and earlier ones.

    A ``last`` file is the run's latest state: it is always rewritten (as the final state, as
    before this callback wrote any other file). A best or top-k file is rewritten when it was
    saved at ``trainer.global_step`` (it holds the final weights), else reported with its step.

    Returns:
        The files to rewrite, and ``(file, its step)`` of the files of earlier steps.
    """
    last: dict[Path, None] = {}
    others: dict[Path, None] = {}
    for cb in trainer.checkpoint_callbacks:
        name = getattr(cb, "last_model_path", "")
        if name and "://" not in str(name) and Path(name).exists():
            last[Path(name)] = None  # a link is replaced by the file, its target left alone
        for name in [getattr(cb, "best_model_path", ""), *getattr(cb, "best_k_models", {})]:
            if name and "://" not in str(name) and Path(name).exists():
                others[Path(name).resolve()] = None
    rewrite, earlier = list(last), []
    for path in others:
        if any(path == p.resolve() and not p.is_symlink() for p in last):
            continue  # the last file itself
        step = int(read_checkpoint(path, map_location="cpu").get("global_step", -1))
        if step == trainer.global_step:
            rewrite.append(path)
        else:
            earlier.append((path, step))
    return rewrite, earlier
