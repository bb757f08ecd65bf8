"""Recompute BatchNorm running statistics before evaluating (eval mode uses them, not the batch's).

An exponential moving average (PyTorch's default momentum 0.1: about the last ten batches) can
lag a network whose feature statistics keep moving. InjFlow under a growing penalty is one such
case (docs/injflow.md): eval-mode reconstructions degrade while training is fine. Recomputing
the statistics as a plain average over training batches removes the lag.
"""

from collections.abc import Iterable
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from genae_lightning.functional.batchnorm import batchnorm_layers

__all__ = ["batchnorm_layers", "recalibrate_batchnorm", "recalibration_loader"]


@torch.no_grad()
def recalibrate_batchnorm(
    module: nn.Module, batches: Iterable[Any], num_batches: int, progress: bool = False
) -> int:
    """Set every BatchNorm's running statistics to their average over ``num_batches`` batches.

    Each batch (images, or ``(images, labels)``) goes through ``module.reconstruct`` in train
    mode without gradients, so the encoder's and the decoder's layers see what they see in
    training. The module's mode and the layers' momenta are restored afterwards.

    Args:
        module: A genae method (anything with ``reconstruct``).
        batches: Training batches, e.g. a shuffled DataLoader.
        num_batches: How many batches to average over (>= 1).
        progress: Show a progress bar.

    Returns:
        The number of batches used (fewer than ``num_batches`` if ``batches`` ran out).

    Raises:
        ValueError: If ``num_batches < 1``, the module has no BatchNorm layer or no batch came.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    layers = batchnorm_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no BatchNorm layer with running "
                         "statistics: there is nothing to recalibrate")
    momenta = [m.momentum for m in layers]
    was_training = module.training
    device = next(module.parameters()).device
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    used = 0
    module.train()
    try:
        for batch in tqdm(islice(batches, num_batches), total=num_batches, disable=not progress,
                          desc="recalibrating BatchNorm", leave=False):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            module.reconstruct(x.to(device))
            used += 1
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        module.train(was_training)
    if used == 0:
        raise ValueError("recalibrate_batchnorm got no batch; pass a non-empty training loader")
    return used


def recalibration_loader(dataset: Dataset, batch_size: int, seed: int = 0) -> DataLoader:
    """A seeded, shuffled loader over ``dataset`` for :func:`recalibrate_batchnorm`."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))
