"""SVHN (Street View House Numbers, cropped digits), read from the official ``.mat`` files.

Files live in ``{root}/train_32x32.mat`` and ``{root}/test_32x32.mat``: torchvision's layout
(directly in ``root``), so a folder torchvision already downloaded into works as is. Reading
never writes, so ``root`` may be read-only; only a download (in ``prepare_data``) writes there.
"""

import functools
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.io
import torch
from scipy.io.matlab import MatReadError
from torch import Tensor
from torchvision import datasets
from torchvision.datasets.utils import download_url

from genae_lightning.data.base import ImageTensors
from genae_lightning.data.files import (
    FileDataModule,
    RequiredFiles,
    check_md5,
    try_download,
)

SPLITS = ("train", "test")
"""The official splits read (the 531k-image ``extra`` split is not used)."""


def read_svhn_mat(path: Path) -> tuple[Tensor, Tensor]:
    """Read an SVHN ``*_32x32.mat`` file: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) in 1..10.

    Args:
        path: The file.

    Returns:
        uint8 images (N, 3, 32, 32) and int64 labels (N,), the digit 0 as label 0 (the file
        stores it as 10).

    Raises:
        ValueError: If the file is not such a ``.mat`` file (the message names it).
    """
    try:
        content = scipy.io.loadmat(path, variable_names=["X", "y"])
    except (MatReadError, ValueError, TypeError, OSError) as error:  # truncated, not a .mat
        raise ValueError(f"{path} is corrupt ({error}); delete it and re-run.") from error
    images, labels = content.get("X"), content.get("y")
    if images is None or labels is None or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        shape = None if images is None else images.shape
        raise ValueError(
            f"{path} holds X of shape {shape}, expected (32, 32, 3, N) images and y labels "
            f"(an SVHN *_32x32.mat file); delete it and re-run."
        )
    labels = labels.reshape(-1).astype(np.int64)
    if len(labels) != images.shape[3] or not np.isin(labels, np.arange(1, 11)).all():
        raise ValueError(
            f"{path} holds {images.shape[3]} images and {len(labels)} labels with values "
            f"{np.unique(labels)[:12].tolist()}; expected one label in 1..10 per image. "
            f"Delete it and re-run."
        )
    images_tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1)))
    return images_tensor.to(torch.uint8), torch.from_numpy(labels % 10)  # 10 means digit 0


class SVHN(FileDataModule):
    """SVHN cropped digits: 73257 train (train + val) and 26032 test colour images, 3x32x32.

    Labels are the digits 0..9 (the files store 0 as 10). Missing files are downloaded from
    the official site (md5-checked) in ``prepare_data`` when ``download`` is on.

    Args:
        root: Folder that holds ``train_32x32.mat`` and ``test_32x32.mat``. May be read-only
            when the files are there.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the 73257 training images: a count (int) or
            a fraction (float in [0, 1)).
        seed: Seed of the train/val split; the same seed gives the same split.
        download: Download missing files from the official site (needs network).
        verify_checksum: Check each file against torchvision's md5 before reading it.
    """

    IMAGE_SHAPE = (3, 32, 32)
    NUM_CLASSES = 10
    TORCHVISION_DATASET: ClassVar[type[datasets.SVHN]] = datasets.SVHN
    """The torchvision class whose URLs, file names and md5s (``split_list``) are used."""

    @property
    def resources(self) -> dict[str, tuple[str, str]]:
        """``(url, md5)`` of each file, by file name (torchvision's values)."""
        return {
            name: (url, md5)
            for split, (url, name, md5) in self.TORCHVISION_DATASET.split_list.items()
            if split in SPLITS
        }

    @property
    def files(self) -> RequiredFiles:
        """The two ``.mat`` files, and what to say when some are missing."""
        names = list(self.resources)
        return RequiredFiles(
            dataset="SVHN",
            folder=self.root,
            names=names,
            layout=" and ".join(names),
            source="http://ufldl.stanford.edu/housenumbers/",
        )

    def load_tensors(self) -> ImageTensors:
        """Read both files (checking their md5s if ``verify_checksum``)."""
        self.files.require()
        train, test = (self._read(self.TORCHVISION_DATASET.split_list[s][1]) for s in SPLITS)
        return ImageTensors(*train, *test)

    def _read(self, name: str) -> tuple[Tensor, Tensor]:
        path = self.root / name
        if self.verify_checksum:
            check_md5(path, self.resources[name][1])
        return read_svhn_mat(path)

    def download_missing(self, missing: list[str]) -> str:
        """Download each missing file; return "" on success, else what went wrong."""
        errors = []
        for name in missing:
            url, md5 = self.resources[name]
            step = functools.partial(download_url, url, self.root, filename=name, md5=md5)
            errors.append(try_download(url, step, partial_file=self.root / name))
        return "; ".join(error for error in errors if error)
