"""A training loader that resumes mid-epoch exactly: same order, no batch seen twice or skipped.

Lightning saves the ``state_dict()`` of every stateful loader in the checkpoint and calls
``load_state_dict()`` when a run resumes; ``set_epoch`` is called at each epoch start. Under DDP
each process takes its own share of every epoch's permutation (see :class:`EpochShuffleSampler`).
"""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


class EpochShuffleSampler(DistributedSampler):
    """A fresh permutation every epoch, a pure function of (seed, epoch); can start mid-epoch.

    Under DDP, process ``rank`` of ``num_replicas`` takes every ``num_replicas``-th index of the
    permutation from position ``rank`` on (the permutation cut to a multiple of ``num_replicas``
    first, so that every process runs the same number of steps); with one process it takes the
    whole permutation. Being a ``DistributedSampler``, Lightning keeps it as it is rather than
    wrapping it in its own.

    Args:
        num_samples: Dataset size.
        seed: Base seed of the permutations.
        num_replicas: Number of processes sharing the data (the world size).
        rank: This process's rank among them.
    """

    def __init__(
        self, num_samples: int, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(range(num_samples), num_replicas=num_replicas, rank=rank, shuffle=True,
                         seed=seed, drop_last=True)
        self.skip = 0  # samples of the current epoch already consumed (set when resuming)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def permutation(self) -> torch.Tensor:
        """This epoch's order of all the dataset indices (the same in every process)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.dataset), generator=gen)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        share = self.permutation()[: self.total_size][self.rank :: self.num_replicas]
        yield from share[skip:].tolist()

    def resume(self, epoch: int, batches_done: int, batch_size: int) -> None:
        """Start the next iteration after ``batches_done`` full batches of ``epoch``."""
        self.epoch = epoch
        self.skip = batches_done * batch_size if batches_done < len(self) // batch_size else 0


class ResumablePosition:
    """Checkpointed position of a training loader drawing full batches from an EpochShuffleSampler.

    A mixin giving ``state_dict``/``load_state_dict`` (Lightning checkpoints the state of every
    loader that has them). The class using it has ``sampler``, ``batch_size`` and ``_progress``:
    a callable returning (epoch, batches of that epoch already trained on), which the DataModule
    reads from its trainer.
    """

    sampler: EpochShuffleSampler
    batch_size: int
    _progress: Callable[[], tuple[int, int]]

    def state_dict(self) -> dict[str, int]:
        """The epoch and the number of its batches already trained on."""
        epoch, batches_done = self._progress()
        return {"epoch": epoch, "batches_done": batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next iteration where the checkpointed run stopped."""
        self.sampler.resume(int(state["epoch"]), int(state["batches_done"]), self.batch_size)


class ResumableDataLoader(ResumablePosition, DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffleSampler` whose position is checkpointed.

    Args:
        *args: DataLoader arguments (the sampler must be an ``EpochShuffleSampler``).
        progress: Returns (epoch, batches of that epoch already trained on); the DataModule
            reads it from its trainer.
        **kwargs: DataLoader keyword arguments.
    """

    def __init__(self, *args: Any, progress: Callable[[], tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochShuffleSampler):
            raise TypeError("ResumableDataLoader needs an EpochShuffleSampler as its sampler")
        self._progress = progress
