"""Fit post-hoc latent priors (full Gaussian, GMM) to the encoded training set."""

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from genae_lightning.callbacks.reliability import was_interrupted
from genae_lightning.priors import fit_posthoc_prior


@torch.no_grad()
def encode_dataset(
    module: L.LightningModule,
    loader: DataLoader,
    max_samples: int | None = None,
    progress: bool = True,
) -> Tensor:
    """Encode a loader's images with ``module.encode`` in eval mode; returns (N, d) on the CPU."""
    was_training = module.training
    module.eval()
    codes, seen = [], 0
    try:
        for batch in tqdm(loader, desc="encoding", disable=not progress, leave=False):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            codes.append(module.encode(x.to(module.device)).float().cpu())
            seen += x.shape[0]
            if max_samples is not None and seen >= max_samples:
                break
    finally:
        module.train(was_training)
    if not codes:
        raise ValueError("the dataloader yielded no batch: cannot fit a latent prior")
    z = torch.cat(codes)
    return z[:max_samples] if max_samples is not None else z


class FitLatentPrior(L.Callback):
    """After training, fit a full-covariance Gaussian and a GMM to the encoded training set.

    The fitted priors live on the module (``model.sample(n, prior="gmm")``) and in its checkpoints:
    after fitting, the last checkpoint of every ``ModelCheckpoint`` is written again so that it
    holds them.

    Args:
        n_components: GMM components (the InjFlow paper: 10, full covariances).
        max_samples: Encode at most this many training images (all when None).
        batch_size: Batch size for encoding.
        seed: Seed of the GMM's initialisation.
        priors: Which post-hoc priors to fit.
    """

    def __init__(
        self,
        n_components: int = 10,
        max_samples: int | None = None,
        batch_size: int = 512,
        seed: int = 0,
        priors: tuple[str, ...] = ("gaussian", "gmm"),
    ) -> None:
        self.n_components, self.max_samples = n_components, max_samples
        self.batch_size, self.seed, self.priors = batch_size, seed, tuple(priors)

    def fit_module(
        self, module: L.LightningModule, loader: DataLoader, progress: bool = True
    ) -> None:
        """Encode ``loader`` and store the fitted priors on ``module`` (the "on demand" entry)."""
        z = encode_dataset(module, loader, self.max_samples, progress)
        for name in self.priors:
            module.set_posthoc_prior(name, fit_posthoc_prior(name, z, self.n_components, self.seed))

    def _train_loader(self, trainer: L.Trainer) -> DataLoader:
        dataset: Dataset | None = getattr(trainer.datamodule, "train_dataset", None)
        if dataset is not None:
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=False)
        return trainer.train_dataloader  # type: ignore[return-value]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fit the priors, then rewrite the last checkpoints so they include them."""
        if was_interrupted(trainer):  # the run will resume; fit at its real end
            return
        self.fit_module(pl_module, self._train_loader(trainer), progress=trainer.is_global_zero)
        for cb in trainer.checkpoint_callbacks:
            last = getattr(cb, "last_model_path", "")
            if last and Path(last).exists():
                trainer.save_checkpoint(last)
