"""CIFAR-10 (and a subset of its classes), read from the official python-pickle batches.

Files live in ``{root}/cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
``test_batch``, ``batches.meta``): torchvision's layout, i.e. what the official archive
``cifar-10-python.tar.gz`` extracts to. Reading never writes, so ``root`` may be read-only;
only a download (in ``prepare_data``) writes there.
"""

import functools
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchvision import datasets
from torchvision.datasets.utils import download_and_extract_archive

from genae_lightning.data.base import ImageTensors
from genae_lightning.data.files import (
    FileDataModule,
    RequiredFiles,
    check_md5,
    try_download,
)

# The only globals a CIFAR batch needs: numpy's array reconstruction (numpy 1 and 2 spell it
# differently). Anything else in the file would be code to run, and is refused.
_CIFAR_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and numpy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(
                f"it needs the global {module}.{name}, which a CIFAR batch never holds "
                "(refused: unpickling it could run code)"
            )
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR python-pickle batch (a dict, pickled by Python 2) from ``path``.

    Raises:
        ValueError: If the file is not such a pickle (the message names it).
    """
    try:
        with path.open("rb") as file:
            content = _ArrayUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is corrupt ({error}); delete it and re-run.") from error
    if not isinstance(content, dict):
        raise ValueError(
            f"{path} holds a {type(content).__name__}, expected a dict (a CIFAR batch); "
            f"delete it and re-run."
        )
    return content


class CIFAR10(FileDataModule):
    """CIFAR-10: 50000 train (train + val) and 10000 test colour images of 10 classes, 3x32x32.

    ``classes`` keeps only some classes, relabelled ``0 .. k-1`` in the order given: e.g.
    ``["bird", "cat", "ship"]`` is the CIFAR10-sub of the SWAE paper (also :class:`CIFAR10Sub`).
    Missing files are downloaded (the official archive, md5-checked, then extracted) in
    ``prepare_data`` when ``download`` is on.

    Args:
        root: Folder that holds ``cifar-10-batches-py/``. May be read-only when the files are
            there.
        classes: Names of the classes to keep (see ``CLASS_NAMES``), relabelled 0..k-1 in
            this order; ``None`` keeps the class's default (all ten for CIFAR10).
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the (kept) training images: a count (int) or
            a fraction (float in [0, 1)).
        seed: Seed of the train/val split; the same seed gives the same split.
        download: Download the official archive if files are missing (needs network).
        verify_checksum: Check each batch file against torchvision's md5 before reading it.
    """

    IMAGE_SHAPE = (3, 32, 32)
    NUM_CLASSES = 10
    CLASS_NAMES: ClassVar[tuple[str, ...]] = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    """The class names, in the order of the official labels 0..9."""
    DEFAULT_CLASSES: ClassVar[tuple[str, ...] | None] = None
    """The classes kept when ``classes`` is ``None``; ``None`` keeps all ten."""
    TORCHVISION_DATASET: ClassVar[type[datasets.CIFAR10]] = datasets.CIFAR10
    """The torchvision class whose folder name, archive URL and md5s are used."""

    def __init__(
        self,
        root: str | Path = "data",
        classes: list[str] | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        val_size: int | float = 0.1,
        seed: int = 0,
        download: bool = True,
        verify_checksum: bool = True,
    ) -> None:
        super().__init__(
            root=root, batch_size=batch_size, num_workers=num_workers, in_memory=in_memory,
            val_size=val_size, seed=seed, download=download, verify_checksum=verify_checksum,
        )
        self.classes = self._check_classes(classes if classes is not None else self.DEFAULT_CLASSES)

    @property
    def num_classes(self) -> int:
        """Number of kept classes; known without loading data."""
        return len(self.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the kept classes, by label: ``class_names[y]`` is the name of label ``y``."""
        return self.classes if self.classes is not None else self.CLASS_NAMES

    @property
    def folder(self) -> Path:
        """The folder the batches are read from: ``{root}/cifar-10-batches-py``."""
        return self.root / self.TORCHVISION_DATASET.base_folder

    @property
    def md5s(self) -> dict[str, str]:
        """Expected md5 of each batch file, by file name (torchvision's values)."""
        tv = self.TORCHVISION_DATASET
        return dict(tv.train_list + tv.test_list + [[tv.meta["filename"], tv.meta["md5"]]])

    @property
    def files(self) -> RequiredFiles:
        """The batch files, and what to say when some are missing."""
        return RequiredFiles(
            dataset=type(self).__name__,
            folder=self.folder,
            names=list(self.md5s),
            layout=f"{self.TORCHVISION_DATASET.base_folder}/",
            source=self.TORCHVISION_DATASET.url + ", extracted",
        )

    def load_tensors(self) -> ImageTensors:
        """Read the batches and keep the selected classes, relabelled 0..k-1."""
        self.files.require()
        self._check_meta()
        tv = self.TORCHVISION_DATASET
        train_images, train_labels = self._read_batches([name for name, _ in tv.train_list])
        test_images, test_labels = self._read_batches([name for name, _ in tv.test_list])
        return ImageTensors(
            *self._select(train_images, train_labels), *self._select(test_images, test_labels)
        )

    def _read_batches(self, names: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Read and concatenate batches: uint8 images (N, 3, 32, 32), int64 labels (N,)."""
        images, labels = [], []
        for name in names:
            path = self._checked(name)
            batch = read_pickle(path)
            data = np.asarray(batch.get("data"))
            batch_labels = np.asarray(batch.get("labels"))
            if data.ndim != 2 or data.shape[1] != np.prod(self.IMAGE_SHAPE):
                raise ValueError(
                    f"{path} holds data of shape {data.shape}, expected (N, 3072) "
                    f"(32x32 RGB images, row-major); delete it and re-run."
                )
            if batch_labels.shape != (len(data),):
                raise ValueError(
                    f"{path} holds {len(data)} images but labels of shape "
                    f"{batch_labels.shape}; expected one label per image. Delete it and re-run."
                )
            images.append(torch.from_numpy(data.astype(np.uint8).reshape(-1, *self.IMAGE_SHAPE)))
            labels.append(torch.from_numpy(batch_labels.astype(np.int64)))
        return torch.cat(images), torch.cat(labels)  # (N, 3, 32, 32) uint8, (N,) int64

    def _select(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Keep the images of the kept classes and relabel them by their place in ``classes``."""
        if self.classes is None:
            return images, labels
        kept = torch.tensor([self.CLASS_NAMES.index(name) for name in self.classes])
        relabel = torch.full((len(self.CLASS_NAMES),), -1, dtype=torch.long)
        relabel[kept] = torch.arange(len(kept))
        mask = torch.isin(labels, kept)
        return images[mask], relabel[labels[mask]]

    def _checked(self, name: str) -> Path:
        """Path of the file ``name``, md5-checked if ``verify_checksum``."""
        path = self.folder / name
        if self.verify_checksum:
            check_md5(path, self.md5s[name])
        return path

    def _check_meta(self) -> None:
        """Raise ``ValueError`` unless ``batches.meta`` names the classes as ``CLASS_NAMES``."""
        path = self._checked(self.TORCHVISION_DATASET.meta["filename"])
        names = tuple(read_pickle(path).get(self.TORCHVISION_DATASET.meta["key"], ()))
        if names != self.CLASS_NAMES:
            raise ValueError(
                f"{path} names the classes {names}, expected {self.CLASS_NAMES}: these are not "
                f"the CIFAR-10 batches. Delete the folder and re-run to download them again."
            )

    def download_missing(self, missing: list[str]) -> str:
        """Download and extract the official archive; return "" on success, else the error."""
        tv = self.TORCHVISION_DATASET
        step = functools.partial(
            download_and_extract_archive, tv.url, self.root, filename=tv.filename, md5=tv.tgz_md5
        )
        return try_download(tv.url, step, partial_file=self.root / tv.filename)

    def _check_classes(self, classes: Sequence[str] | None) -> tuple[str, ...] | None:
        """Validate the class names: known, distinct, at least one."""
        if classes is None:
            return None
        if isinstance(classes, str):
            classes = [classes]
        unknown = [name for name in classes if name not in self.CLASS_NAMES]
        if unknown or not classes or len(set(classes)) != len(classes):
            problem = f"unknown {unknown}" if unknown else "none or repeated names"
            raise ValueError(
                f"classes must be distinct names from {list(self.CLASS_NAMES)}, got "
                f"{list(classes)!r} ({problem}); pass e.g. --data.classes '[bird, cat, ship]'."
            )
        return tuple(classes)


class CIFAR10Sub(CIFAR10):
    """CIFAR10-sub of the SWAE paper: the bird, cat and ship images of CIFAR-10, labels 0, 1, 2.

    15000 train (train + val) and 3000 test images, 3x32x32. Same files and arguments as
    :class:`CIFAR10`; ``classes`` defaults to ``("bird", "cat", "ship")``.

    Reference:
        Sun and Guo, "Symmetric Wasserstein Autoencoders", UAI 2021: CIFAR10-sub "contains
        3 classes: bird, cat, and ship".
    """

    NUM_CLASSES = 3
    DEFAULT_CLASSES = ("bird", "cat", "ship")
