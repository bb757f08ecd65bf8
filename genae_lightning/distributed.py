"""How evaluation work is split over DDP processes and their results combined."""

import lightning as L
from torch import Tensor


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
