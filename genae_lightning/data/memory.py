"""The ``in_memory`` data path: the whole dataset on the training device, batches by indexing.

For datasets that fit in device memory (MNIST-family, CIFAR-10, SVHN, Coil20), the uint8 image
tensor is copied to the training device once; a batch is then one index gather and one
conversion to float on that device: no worker processes, no per-batch host-to-device copy. The
training order is the DataLoader path's (:class:`EpochShuffleSampler`: the same seed and epoch
give the same batches), the position is checkpointed for mid-epoch resume, and under DDP every
process takes its share of each epoch as the DataLoader path does.
"""

import math
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from genae_lightning.data.resumable import EpochShuffleSampler, ResumablePosition
from genae_lightning.data.tensors import ImageTensorDataset, to_unit_float

# device copies of the datasets' tensors, made once per (dataset, device)
_DEVICE_COPIES: "weakref.WeakKeyDictionary[Dataset, tuple[torch.device, Tensor, Tensor]]" = (
    weakref.WeakKeyDictionary()
)


def device_tensors(
    dataset: ImageTensorDataset, device: torch.device, owner: str = "the DataModule"
) -> tuple[Tensor, Tensor]:
    """The dataset's images (in their storage dtype) and labels on ``device``, copied once.

    Args:
        dataset: A dataset held as one image tensor and one label tensor.
        device: The training device.
        owner: Name used in error messages (the DataModule's class).

    Raises:
        ValueError: If the images would take more than half of the device's free memory.
    """
    cached = _DEVICE_COPIES.get(dataset)
    if cached is not None and cached[0] == device:
        return cached[1], cached[2]
    images, labels = dataset.images, dataset.labels
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        needed = images.numel() * images.element_size()
        if needed > free // 2:
            raise ValueError(
                f"{owner}: in_memory=True would put {needed / 2**30:.2f} GiB of images on "
                f"{device}, which has {free / 2**30:.2f} GiB free; pass --data.in_memory false "
                f"to stream batches through a DataLoader instead."
            )
    moved = images.to(device), labels.to(device)
    _DEVICE_COPIES[dataset] = (device, *moved)
    return moved


class InMemoryLoader(ResumablePosition):
    """Batches ``(x, y)`` cut by indexing from image and label tensors already on a device.

    ``x`` is float32 in [0, 1], (B, C, H, W); ``y`` int64, (B,). Lightning accepts it as a
    dataloader: it has ``__len__``, a ``sampler`` with ``set_epoch``, and (for training) the
    ``state_dict``/``load_state_dict`` of :class:`ResumablePosition`.

    Args:
        images: All images of the split on the device, (N, C, H, W), uint8 or float.
        labels: Their labels on the same device, (N,).
        sampler: Yields this process's indices of an epoch: an :class:`EpochShuffleSampler` for
            training, a ``DistributedSampler`` without shuffling for evaluation.
        batch_size: Samples per batch.
        drop_last: Drop the last incomplete batch (training does).
        progress: (epoch, batches of it trained on), for ``state_dict``; training only.
        dataset: The host dataset the tensors came from (``loader.dataset``, as on a DataLoader).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        sampler: DistributedSampler,
        batch_size: int,
        drop_last: bool,
        progress: Callable[[], tuple[int, int]] | None = None,
        dataset: Dataset | None = None,
    ) -> None:
        if len(images) != len(labels) or images.device != labels.device:
            raise ValueError(
                f"images and labels must be as many and on one device, got {len(images)} on "
                f"{images.device} and {len(labels)} on {labels.device}"
            )
        self.images, self.labels = images, labels
        self.sampler = sampler
        self.batch_sampler = None  # as on a DataLoader batching its sampler (Lightning reads it)
        self.batch_size, self.drop_last = batch_size, drop_last
        self._progress = progress or (lambda: (0, 0))
        self.dataset = dataset

    def __len__(self) -> int:
        """Batches in a full epoch of this process."""
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        index = torch.as_tensor(list(self.sampler), dtype=torch.long).to(self.images.device)
        end = len(index) - len(index) % self.batch_size if self.drop_last else len(index)
        for start in range(0, end, self.batch_size):
            batch = index[start : start + self.batch_size]
            yield to_unit_float(self.images[batch]), self.labels[batch]


def memory_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int,
    device: torch.device,
    replicas: tuple[int, int] = (1, 0),
    progress: Callable[[], tuple[int, int]] | None = None,
    owner: str = "the DataModule",
) -> InMemoryLoader:
    """An :class:`InMemoryLoader` over ``dataset``, its tensors copied to ``device`` once.

    Args:
        dataset: An :class:`ImageTensorDataset`.
        batch_size: Samples per batch.
        train: Shuffled per epoch (seeded), full batches, resumable; else in order, all samples.
        seed: Base seed of the training permutations (the DataLoader path's).
        device: The training device (``trainer.strategy.root_device``).
        replicas: (number of processes, this process's rank) under DDP.
        progress: (epoch, batches of it trained on), for mid-epoch resume.
        owner: Name used in error messages (the DataModule's class).

    Raises:
        ValueError: If the dataset is not held as tensors (e.g. decoded from files when fetched).
    """
    if not isinstance(dataset, ImageTensorDataset):
        raise ValueError(
            f"{owner}: in_memory=True needs datasets held as one image tensor, but this one is a "
            f"{type(dataset).__name__} (images read from files when fetched, too large to keep "
            f"whole); pass --data.in_memory false and use --data.num_workers to load in parallel."
        )
    images, labels = device_tensors(dataset, device, owner)
    num_replicas, rank = replicas
    if train:
        sampler: DistributedSampler = EpochShuffleSampler(len(dataset), seed, num_replicas, rank)
    else:
        sampler = DistributedSampler(range(len(dataset)), num_replicas, rank, shuffle=False)
    return InMemoryLoader(images, labels, sampler, batch_size, drop_last=train,
                          progress=progress, dataset=dataset)
