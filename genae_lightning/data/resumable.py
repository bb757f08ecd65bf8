"""A training loader that resumes mid-epoch exactly: same order, no batch seen twice or skipped.

Lightning saves the ``state_dict()`` of every stateful loader in the checkpoint and calls
``load_state_dict()`` when a run resumes; ``set_epoch`` is called at each epoch start.
"""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation every epoch, a pure function of (seed, epoch); can start mid-epoch.

    Args:
        num_samples: Dataset size.
        seed: Base seed of the permutations.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples, self.seed = num_samples, seed
        self.epoch = 0
        self.skip = 0  # samples of the current epoch already consumed (set when resuming)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def permutation(self) -> torch.Tensor:
        """This epoch's order of the dataset indices."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.num_samples, generator=gen)

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        yield from self.permutation()[skip:].tolist()

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
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

    def state_dict(self) -> dict[str, int]:
        """The epoch and the number of its batches already trained on."""
        epoch, batches_done = self._progress()
        return {"epoch": epoch, "batches_done": batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next iteration where the checkpointed run stopped."""
        sampler: EpochShuffleSampler = self.sampler  # type: ignore[assignment]
        sampler.epoch = int(state["epoch"])
        done = int(state["batches_done"])
        sampler.skip = done * self.batch_size if done < len(self) else 0
