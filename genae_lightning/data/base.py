"""Shared base of the image DataModules: argument checks, seeded splits, tensor datasets, loaders.

A DataModule subclass declares what the data looks like (``IMAGE_SHAPE``, ``NUM_CLASSES``) and
loads the raw tensors (``load_tensors``); everything else (the seeded train/val split, the
datasets, the loaders) lives here once. A subclass whose data do not fit in memory supplies its
own ``Dataset`` objects instead, by overriding ``load_datasets``.
"""

import abc
from typing import ClassVar, NamedTuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from genae_lightning.data.memory import memory_loader
from genae_lightning.data.resumable import EpochShuffleSampler, ResumableDataLoader
from genae_lightning.data.tensors import ImageTensorDataset
from genae_lightning.trust import trusted_base


class ImageTensors(NamedTuple):
    """Images and labels of the train and test splits, as a DataModule loads them.

    Images are uint8 in [0, 255] or float in [0, 1], shape (N, C, H, W); labels are int64, (N,).
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


class ImageDatasets(NamedTuple):
    """The train, val and test datasets of a DataModule; each yields ``(image, label)`` pairs."""

    train: Dataset[tuple[Tensor, Tensor]]
    val: Dataset[tuple[Tensor, Tensor]]
    test: Dataset[tuple[Tensor, Tensor]]


def check_int(name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}, got {value!r}; "
            f"pass e.g. --data.{name} {max(minimum, 1)}."
        )


def check_split_size(name: str, value: int | float) -> None:
    """Raise ``ValueError`` unless ``value`` is a count >= 0 or a fraction in [0, 1)."""
    is_count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    is_fraction = isinstance(value, float) and 0.0 <= value < 1.0
    if not (is_count or is_fraction):
        raise ValueError(
            f"{name} must be a number of samples (int >= 0) or a fraction in [0, 1) "
            f"(float), got {value!r}; pass e.g. --data.{name} 0.1 or --data.{name} 5000."
        )


def seeded_test_split(
    images: Tensor, labels: Tensor, test_size: int | float, seed: int
) -> ImageTensors:
    """Split data that come without a test split into a training part and a test split (seeded).

    Args:
        images: All images, (N, C, H, W).
        labels: All labels, (N,).
        test_size: How many to hold out for testing: a count, or a fraction of N.
        seed: Seed of the split; the same seed gives the same split.

    Returns:
        The training part (to be split into train and val) and the test split.
    """
    train, test = seeded_split(len(labels), test_size, seed, "test_size")
    return ImageTensors(images[train], labels[train], images[test], labels[test])


def seeded_split(n: int, held_out: int | float, seed: int, name: str) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` at random, reproducibly, into kept and held-out indices.

    Args:
        n: Number of samples to split.
        held_out: How many to hold out: a count, or a fraction of ``n``.
        seed: Seed of the permutation; the same seed gives the same split.
        name: Argument name used in the error message.

    Returns:
        ``(kept, held)``: two disjoint index tensors whose union is ``range(n)``.

    Raises:
        ValueError: If nothing would be kept.

    Examples:
        >>> kept, held = seeded_split(10, 0.2, seed=0, name="val_size")
        >>> len(kept), len(held), sorted(torch.cat([kept, held]).tolist()) == list(range(10))
        (8, 2, True)
    """
    n_held = held_out if isinstance(held_out, int) else round(held_out * n)
    if n_held >= n:
        raise ValueError(
            f"{name}={held_out!r} holds out {n_held} of {n} samples, leaving none; "
            f"pass a smaller {name} (a count < {n} or a fraction < 1)."
        )
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return permutation[n_held:], permutation[:n_held]


@trusted_base("data")
class ImageDataModule(L.LightningDataModule, abc.ABC):
    """Base of the image DataModules: a seeded train/val split, tensor datasets and loaders.

    Batches are ``(x, y)``: ``x`` float32 in [0, 1] of shape (B, C, H, W), ``y`` int64 (B,).
    ``image_shape`` and ``num_classes`` are known right after construction, before any data is
    loaded, so the CLI can link them into the model. The datasets (``train_dataset``,
    ``val_dataset``, ``test_dataset``) exist after ``setup``.

    Subclasses set ``IMAGE_SHAPE`` and ``NUM_CLASSES``, implement ``load_tensors``, and add their
    own constructor arguments (e.g. ``root``), passing these ones on to this constructor. A
    subclass that makes its own ``Dataset`` objects (e.g. decoding image files lazily, or with
    an official validation split) overrides ``load_datasets`` instead of ``load_tensors``.

    Args:
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        val_size: Validation samples held out of the training split: a count (int) or a
            fraction of it (float in [0, 1)).
        seed: Seed of the train/val split; the same seed gives the same split.
        in_memory: Keep each split whole on the training device and cut batches from it by
            indexing (no worker processes; ``num_workers`` is then unused): for data that fit in
            device memory (MNIST-family, CIFAR-10, SVHN, Coil20). Same order, seeding and resume
            as the DataLoader path (see ``genae_lightning.data.memory``).
    """

    IMAGE_SHAPE: ClassVar[tuple[int, int, int]]
    NUM_CLASSES: ClassVar[int]

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 0.1,
        seed: int = 0,
        in_memory: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(in_memory, bool):
            raise ValueError(f"in_memory must be true or false, got {in_memory!r}")
        check_int("batch_size", batch_size, minimum=1)
        check_int("num_workers", num_workers, minimum=0)
        check_split_size("val_size", val_size)
        check_int("seed", seed, minimum=0)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.seed = seed
        self.in_memory = in_memory
        self.train_dataset: Dataset[tuple[Tensor, Tensor]] | None = None
        self.val_dataset: Dataset[tuple[Tensor, Tensor]] | None = None
        self.test_dataset: Dataset[tuple[Tensor, Tensor]] | None = None
        self.save_hyperparameters()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image; known without loading data."""
        return self.IMAGE_SHAPE

    @property
    def num_classes(self) -> int:
        """Number of classes of the labels; known without loading data."""
        return self.NUM_CLASSES

    def load_tensors(self) -> ImageTensors:
        """Load the train and test images and labels (called once, by ``load_datasets``)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement load_tensors() (or override load_datasets())."
        )

    def load_datasets(self) -> ImageDatasets:
        """Make the train, val and test datasets (called once, by ``setup``).

        By default: ``load_tensors``, check the tensors against ``image_shape`` and
        ``num_classes``, and split the training part into train and val (seeded). Override it
        to supply other ``Dataset`` objects, e.g. images decoded from files when fetched.
        """
        data = self.load_tensors()
        self._check_loaded(data)
        train, val = seeded_split(len(data.train_labels), self.val_size, self.seed, "val_size")
        return ImageDatasets(
            ImageTensorDataset(data.train_images[train], data.train_labels[train]),
            ImageTensorDataset(data.train_images[val], data.train_labels[val]),
            ImageTensorDataset(data.test_images, data.test_labels),
        )

    def setup(self, stage: str | None = None) -> None:
        """Load the data once and split the training part into train and val (seeded).

        Args:
            stage: Lightning's stage (``"fit"``, ``"validate"``, ``"test"``, ...); all splits
                are made whatever the stage, as these datasets are small.
        """
        if self.train_dataset is not None:
            return
        self.train_dataset, self.val_dataset, self.test_dataset = self.load_datasets()

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the last incomplete batch is dropped."""
        dataset = self._require("train_dataset", self.train_dataset)
        if len(dataset) < self.batch_size:
            raise ValueError(
                f"{type(self).__name__}: the training split has {len(dataset)} samples, fewer "
                f"than batch_size={self.batch_size}, so no full batch can be made; pass a "
                f"smaller --data.batch_size or a smaller --data.val_size."
            )
        return self._loader(dataset, train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches, in a fixed order."""
        return self._loader(self._require("val_dataset", self.val_dataset), train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches, in a fixed order."""
        return self._loader(self._require("test_dataset", self.test_dataset), train=False)

    def predict_dataloader(self) -> DataLoader:
        """``genae predict`` / ``Trainer.predict`` run over the test split, in a fixed order."""
        return self.test_dataloader()

    def _loader(self, dataset: Dataset[tuple[Tensor, Tensor]], train: bool) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        sharding = trainer.distributed_sampler_kwargs if trainer is not None else None
        replicas = (sharding["num_replicas"], sharding["rank"]) if sharding else (1, 0)
        if self.in_memory:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
            return memory_loader(  # type: ignore[return-value]
                dataset, self.batch_size, train, self.seed, device, replicas,
                self._train_progress, type(self).__name__,
            )
        options: dict = dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        if not train:
            return DataLoader(dataset, shuffle=False, **options)
        # seeded per-epoch order whose position is checkpointed: resuming mid-epoch is exact
        sampler = EpochShuffleSampler(len(dataset), self.seed, *replicas)  # type: ignore[arg-type]
        return ResumableDataLoader(dataset, sampler=sampler, drop_last=True,
                                   progress=self._train_progress, **options)

    def _train_progress(self) -> tuple[int, int]:
        """(epoch, batches of it trained on) from the attached trainer; (0, 0) without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _require(
        self, name: str, dataset: Dataset[tuple[Tensor, Tensor]] | None
    ) -> Dataset[tuple[Tensor, Tensor]]:
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__}.{name} does not exist yet; call setup() first "
                f"(the Trainer does this before asking for a dataloader)."
            )
        return dataset

    def _check_loaded(self, data: ImageTensors) -> None:
        """Raise ``ValueError`` if loaded tensors disagree with the declared shape or classes."""
        name = type(self).__name__
        splits = {
            "train": (data.train_images, data.train_labels),
            "test": (data.test_images, data.test_labels),
        }
        for split, (images, labels) in splits.items():
            if tuple(images.shape[1:]) != self.image_shape or len(images) != len(labels):
                raise ValueError(
                    f"{name}.load_tensors() returned {split} images of shape "
                    f"{tuple(images.shape)} and {len(labels)} labels; expected (N, "
                    f"{', '.join(map(str, self.image_shape))}) images and N labels."
                )
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"{name}: {split} labels range over [{int(labels.min())}, "
                    f"{int(labels.max())}]; expected classes in [0, {self.num_classes - 1}]."
                )
