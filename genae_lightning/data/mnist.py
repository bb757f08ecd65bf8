"""MNIST and Fashion-MNIST, read from the original IDX files in torchvision's folder layout.

Files live in ``{root}/MNIST/raw/`` resp. ``{root}/FashionMNIST/raw/`` as the original ``.gz``
files (checked against torchvision's md5s) or as already-uncompressed IDX files (checked against
the md5s of the decompressed originals, :data:`IDX_MD5S`). Reading never writes, so ``root`` may
be read-only; only a download (in ``prepare_data``) writes there.
"""

import functools
import gzip
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
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

IDX_IMAGES_MAGIC = 2051  # uint8 data, 3 dimensions: (N, H, W)
IDX_LABELS_MAGIC = 2049  # uint8 data, 1 dimension: (N,)

IDX_MD5S: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
"""md5 of each uncompressed IDX file, by data set and name: the decompressed original ``.gz``."""


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...] = ()) -> np.ndarray:
    """Read a uint8 IDX file (gzipped if its name ends in ``.gz``) into an array.

    Args:
        path: The file.
        magic: Expected magic number: 2051 for images, 2049 for labels.
        item_shape: Expected shape of one item, e.g. ``(28, 28)`` for images.

    Returns:
        A uint8 array of shape ``(N, *item_shape)``.

    Raises:
        ValueError: If the file is not a valid IDX file of that kind (the message names it).
    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:  # a truncated or non-gzip file
        raise ValueError(f"{path} is corrupt ({error}); delete it and re-run.") from error
    ndim = len(item_shape) + 1
    header_size = 4 * (ndim + 1)
    found_magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found_magic != magic or len(data) < header_size:
        raise ValueError(
            f"{path} is not a {ndim}-dimensional uint8 IDX file: expected magic number {magic}, "
            f"got {found_magic} ({len(data)} bytes); delete it and re-run."
        )
    shape = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(4, header_size, 4))
    if shape[1:] != item_shape or len(data) != header_size + int(np.prod(shape)):
        raise ValueError(
            f"{path} is corrupt: expected items of shape {item_shape}, its header says {shape} "
            f"and it holds {len(data) - header_size} data bytes; delete it and re-run."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def known_files() -> dict[str, str]:
    """What each original MNIST and Fashion-MNIST file is, by md5 (``.gz`` and uncompressed)."""
    known = {}
    for dataset in (datasets.MNIST, datasets.FashionMNIST):
        name = dataset.__name__
        files = [*dataset.resources, *IDX_MD5S[name].items()]
        known.update({md5: f"{name}'s {file}" for file, md5 in files})
    return known


class MNIST(FileDataModule):
    """MNIST handwritten digits: 60000 train (train + val) and 10000 test images, 1x28x28.

    Reads ``{root}/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (or the same
    files uncompressed, without ``.gz``), torchvision's layout, so a folder torchvision already
    downloaded into works as is. Missing files are downloaded from torchvision's mirrors in
    ``prepare_data`` when ``download`` is on.

    Args:
        root: Folder that holds ``MNIST/raw/`` (``FashionMNIST/raw/`` for Fashion-MNIST).
            May be read-only when the files are there.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the 60000 training images: a count (int) or a
            fraction (float in [0, 1)).
        seed: Seed of the train/val split; the same seed gives the same split.
        download: Download missing files from torchvision's mirrors (needs network).
        verify_checksum: Check each file before reading it: a ``.gz`` file against torchvision's
            md5, an uncompressed one against the md5 of the decompressed original.
    """

    IMAGE_SHAPE = (1, 28, 28)
    NUM_CLASSES = 10
    TORCHVISION_DATASET: ClassVar[type[datasets.MNIST]] = datasets.MNIST
    """The torchvision class whose name (folder), ``mirrors`` and ``resources`` are used."""

    @property
    def raw_folder(self) -> Path:
        """The folder the IDX files are read from: ``{root}/<dataset name>/raw``."""
        return self.root / self.TORCHVISION_DATASET.__name__ / "raw"

    @property
    def md5s(self) -> dict[str, str]:
        """Expected md5 of each original ``.gz`` file, by file name (torchvision's values)."""
        return dict(self.TORCHVISION_DATASET.resources)

    @property
    def files(self) -> RequiredFiles:
        """The four files, each present as the original ``.gz`` or uncompressed."""
        name = self.TORCHVISION_DATASET.__name__
        return RequiredFiles(
            dataset=name,
            folder=self.raw_folder,
            names=list(self.md5s),
            layout=f"{name}/raw/ (e.g. --data.root data)",
            note="the .gz files or their uncompressed copies",
            present=lambda path: path.is_file() or path.with_suffix("").is_file(),
        )

    def load_tensors(self) -> ImageTensors:
        """Read the four IDX files (checking their md5s if ``verify_checksum``)."""
        self.files.require()
        return ImageTensors(*self._read_split("train"), *self._read_split("t10k"))

    def _read_split(self, prefix: str) -> tuple[Tensor, Tensor]:
        """Read ``{prefix}-images`` and ``{prefix}-labels``: (N, 1, 28, 28) uint8, (N,) int64."""
        images_path = self._find(f"{prefix}-images-idx3-ubyte.gz")
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte.gz")
        images = read_idx(images_path, IDX_IMAGES_MAGIC, self.IMAGE_SHAPE[1:])
        labels = read_idx(labels_path, IDX_LABELS_MAGIC)
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                f"labels; expected as many of each. Delete the wrong one and re-run."
            )
        images_tensor = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
        return images_tensor, torch.from_numpy(labels.astype(np.int64))  # (N,) int64

    def _find(self, gz_name: str) -> Path:
        """Path of ``gz_name``, else of its uncompressed copy; its md5 is checked (see IDX_MD5S)."""
        path = self.raw_folder / gz_name
        if path.is_file():
            expected = self.md5s[gz_name]
        else:
            path = path.with_suffix("")
            expected = IDX_MD5S[self.TORCHVISION_DATASET.__name__][path.name]
        if self.verify_checksum:
            check_md5(path, expected, known_files())
        return path

    def download_missing(self, missing: list[str]) -> str:
        """Download each missing file; return "" on success, else what went wrong."""
        return "; ".join(error for name in missing if (error := self._download_file(name)))

    def _download_file(self, name: str) -> str:
        """Try each mirror for ``name``; return "" on success, else what went wrong."""
        errors = []
        for mirror in self.TORCHVISION_DATASET.mirrors:
            url = f"{mirror}{name}"
            step = functools.partial(
                download_url, url, root=self.raw_folder, filename=name, md5=self.md5s[name]
            )
            error = try_download(url, step, partial_file=self.raw_folder / name)
            if not error:
                return ""
            errors.append(error)
        return "; ".join(errors)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): 60000 train (train + val) and 10000 test clothing images, 1x28x28.

    Same files, format and arguments as :class:`MNIST`, read from ``{root}/FashionMNIST/raw/``
    and checked against torchvision's Fashion-MNIST md5s.
    """

    TORCHVISION_DATASET = datasets.FashionMNIST
