"""How evaluation work is split over DDP processes and their results combined.

Every method of :class:`Collective` that talks to the other processes is a collective call:
every process must make it, the same number of times and in the same order (as
``trainer.log_dir``, ``strategy.broadcast``, barriers and gathers); rank-zero-only work comes
after them.
"""

import lightning as L
import torch
from torch import Tensor, nn


class Collective:
    """Shards of a sample set per process, and sums/concatenations over processes.

    Without a strategy (or on one process) everything is the identity, so the same evaluation
    code runs in a plain script, in ``genae evaluate`` and inside a DDP ``Trainer``.

    Args:
        strategy: The Trainer's strategy (``trainer.strategy``); None for one process.
    """

    def __init__(self, strategy: L.pytorch.strategies.Strategy | None = None) -> None:
        self.strategy = strategy
        self.rank = strategy.global_rank if strategy is not None else 0
        self.world_size = strategy.world_size if strategy is not None else 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank zero (which prints progress and writes files)."""
        return self.rank == 0

    def shard(self, n: int) -> range:
        """This process's contiguous share of ``range(n)``; all shares have the same size.

        The last ``n % world_size`` items are dropped so that gathered results line up.
        """
        per_rank = n // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def sum(self, tensor: Tensor) -> Tensor:
        """Elementwise sum over processes."""
        if self.world_size == 1:
            return tensor
        device = tensor.device
        reduced = self.strategy.reduce(tensor.to(self.strategy.root_device), reduce_op="sum")
        return reduced.to(device)

    def cat(self, tensor: Tensor) -> Tensor:
        """Concatenate equally shaped per-process tensors along dim 0, in rank order."""
        if self.world_size == 1:
            return tensor
        device = tensor.device
        gathered = self.strategy.all_gather(tensor.to(self.strategy.root_device))  # (W, N, ...)
        return gathered.flatten(0, 1).to(device)

    @torch.no_grad()
    def copy_from_main(self, tensors: list[Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank zero's values (every process calls it)."""
        if self.world_size == 1 or not tensors:
            return
        values = self.strategy.broadcast([t.detach().cpu() for t in tensors], src=0)
        for tensor, value in zip(tensors, values, strict=True):
            tensor.copy_(value)

    def sync_buffers(self, module: nn.Module) -> None:
        """Give every process rank zero's buffers of ``module`` (BatchNorm's running statistics).

        DDP copies rank zero's buffers into the others before each training forward, but the
        last training step leaves each process with its own batch's update: at the end of fit
        the processes' BatchNorm statistics differ. Rank zero's are those its checkpoint saves.
        """
        self.copy_from_main(list(module.buffers()))
