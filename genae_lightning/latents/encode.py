"""Encode a dataset into latent codes, on one process or split over DDP processes."""

import lightning as L
import torch
from lightning.pytorch.strategies import Strategy
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from genae_lightning.functional.precision import to_module


@torch.no_grad()
def encode_dataset(
    module: L.LightningModule,
    loader: DataLoader,
    max_samples: int | None = None,
    progress: bool = True,
) -> Tensor:
    """Encode a loader's images with ``module.encode`` in eval mode; returns (N, d) on the CPU.

    Float images are cast to the module's dtype (float64 after ``precision="64-true"``).
    """
    was_training = module.training
    module.eval()
    codes, seen = [], 0
    try:
        for batch in tqdm(loader, desc="encoding", disable=not progress, leave=False):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            codes.append(module.encode(to_module(x, module)).float().cpu())
            seen += x.shape[0]
            if max_samples is not None and seen >= max_samples:
                break
    finally:
        module.train(was_training)
    if not codes:
        raise ValueError("the dataloader yielded no batch: cannot fit a latent prior")
    z = torch.cat(codes)
    return z[:max_samples] if max_samples is not None else z


def encode_dataset_distributed(
    module: L.LightningModule,
    dataset: Dataset,
    strategy: Strategy,
    batch_size: int = 512,
    max_samples: int | None = None,
    progress: bool = True,
) -> Tensor:
    """Encode the first ``max_samples`` items of ``dataset`` split over the DDP processes.

    Process r of W encodes items r, r + W, r + 2W, ... (padded to the same count with item 0),
    the codes are gathered from all processes and put back in the dataset's order. Every
    process must call it; each gets all the codes, (N, d) on the CPU.

    Args:
        module: The model (``encode`` is run in eval mode).
        dataset: Map-style dataset of images or ``(image, label)`` pairs.
        strategy: The trainer's strategy (``trainer.strategy``); one process encodes all.
        batch_size: Batch size for encoding.
        max_samples: Encode at most this many (the first ones); all when None.
        progress: Show a progress bar.
    """
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))  # type: ignore[arg-type]
    world, rank = strategy.world_size, strategy.global_rank
    per_process = -(-n // world)
    share = list(range(rank, n, world))
    share += [0] * (per_process - len(share))  # equal sizes for all_gather; cut below
    loader = DataLoader(Subset(dataset, share), batch_size=batch_size, shuffle=False)
    z = encode_dataset(module, loader, progress=progress)  # (per_process, d)
    if world == 1:
        return z
    gathered = strategy.all_gather(z.to(strategy.root_device))  # (W, per_process, d)
    # item j of process r is dataset item j * W + r: interleave, then drop the padding
    return gathered.transpose(0, 1).reshape(-1, z.shape[1])[:n].cpu()
