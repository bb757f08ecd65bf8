"""CelebA faces, 64x64: the aligned images, centre-cropped and resized, official partition.

Files live in torchvision's layout: ``{root}/celeba/img_align_celeba/*.jpg`` (the 202599
aligned 178x218 JPEGs, as ``img_align_celeba.zip`` extracts) and
``{root}/celeba/list_eval_partition.txt``. Images are decoded when fetched, never all at once.
Reading never writes, so ``root`` may be read-only; only a download (in ``prepare_data``)
writes there.
"""

import functools
import os
from pathlib import Path
from typing import ClassVar

import torch
from torchvision import datasets

from genae_lightning.data.base import ImageDataModule, ImageDatasets, check_int
from genae_lightning.data.files import (
    ImageFileDataset,
    RequiredFiles,
    check_md5,
    read_image,
    try_download,
)

IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
ALIGNED_SIZE = (178, 218)  # (width, height) of the aligned images
PARTITIONS = {"train": 0, "val": 1, "test": 2}  # the official codes in list_eval_partition.txt


def read_partition(path: Path) -> dict[str, list[str]]:
    """Read ``list_eval_partition.txt`` (lines ``000001.jpg 0``): image names by split.

    Args:
        path: The file.

    Returns:
        The image names of each split, ``{"train": [...], "val": [...], "test": [...]}``
        (official codes 0, 1, 2), in file order.

    Raises:
        ValueError: If a line is not ``<name> <0|1|2>`` (the message names file and line).
    """
    codes = {str(code): split for split, code in PARTITIONS.items()}
    splits: dict[str, list[str]] = {split: [] for split in PARTITIONS}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in codes:
            raise ValueError(
                f"{path}, line {number}: expected '<image name> <0|1|2>' (train/val/test), "
                f"got {line!r}; replace the file with the original."
            )
        splits[codes[fields[1]]].append(fields[0])
    return splits


class CelebA(ImageDataModule):
    """CelebA aligned faces, centre-cropped and resized: 3x64x64 by default, official splits.

    Each aligned 178x218 image is centre-cropped to ``crop_size`` x ``crop_size`` and resized
    to ``image_size`` (bilinear, antialiased). The default, a 140x140 crop resized to 64x64, is
    the protocol of the WAE paper (Tolstikhin et al., 2018), the common "64x64 cropped CelebA"
    of the autoencoder papers reproduced here; 148 is another common crop. The official partition
    (``list_eval_partition.txt``) gives 162770 train, 19867 val and 19962 test images, so no
    ``val_size``/``seed`` is taken. Images are decoded when fetched (:class:`ImageFileDataset`),
    so memory stays small; use ``num_workers`` to decode in parallel. CelebA has no classes
    here: every label is 0 (``num_classes`` is 1).

    Missing files are downloaded with torchvision's ``CelebA(download=True)`` in
    ``prepare_data`` when ``download`` is on: from Google Drive, which needs the ``gdown``
    package and often refuses for a while ("too many users"); then download
    ``img_align_celeba.zip`` and ``list_eval_partition.txt`` by hand from the CelebA site.

    Args:
        root: Folder that holds ``celeba/``. May be read-only when the files are there.
        image_size: Side of the square images the DataModule yields.
        crop_size: Side of the centred square cut from each 178x218 image before resizing.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 decodes in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        download: Download missing files with torchvision (needs network and ``gdown``).
        verify_checksum: Check ``list_eval_partition.txt`` against torchvision's md5.
    """

    IMAGE_SHAPE = (3, 64, 64)
    NUM_CLASSES = 1
    TORCHVISION_DATASET: ClassVar[type[datasets.CelebA]] = datasets.CelebA
    """The torchvision class that downloads, and whose folder name and md5s are used."""
    SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, img_align_celeba.zip extracted"
    """Where the original files come from, for a manual download."""

    def __init__(
        self,
        root: str | Path = "data",
        image_size: int = 64,
        crop_size: int = 140,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        download: bool = True,
        verify_checksum: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, val_size=0, in_memory=in_memory
        )
        for name in ("val_size", "seed"):  # not CelebA's arguments: keep CelebA(**hparams) valid
            self.hparams.pop(name, None)
        check_int("image_size", image_size, minimum=1)
        check_int("crop_size", crop_size, minimum=1)
        if crop_size > min(ALIGNED_SIZE):
            raise ValueError(
                f"crop_size must be at most {min(ALIGNED_SIZE)} (the aligned images are "
                f"{ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]}), got {crop_size}; pass e.g. "
                f"--data.crop_size 140."
            )
        self.root = Path(root)
        self.image_size = image_size
        self.crop_size = crop_size
        self.download = download
        self.verify_checksum = verify_checksum

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(3, image_size, image_size)`` of one image; known without loading data."""
        return (3, self.image_size, self.image_size)

    @property
    def folder(self) -> Path:
        """The folder the files are read from: ``{root}/celeba``."""
        return self.root / self.TORCHVISION_DATASET.base_folder

    @property
    def files(self) -> RequiredFiles:
        """The image folder and the partition file, and what to say when one is missing."""
        return RequiredFiles(
            dataset="CelebA",
            folder=self.folder,
            names=[f"{IMAGES}/", PARTITION],
            layout=f"{self.TORCHVISION_DATASET.base_folder}/{IMAGES}/ and "
            f"{self.TORCHVISION_DATASET.base_folder}/{PARTITION}",
            source=self.SOURCE,
            present=Path.exists,
        )

    def prepare_data(self) -> None:
        """Download the data with torchvision if files are missing and ``download`` is on.

        Raises:
            FileNotFoundError: If files are missing and could not be downloaded.
        """
        self.files.prepare(self.download, lambda missing: self._download())

    def load_datasets(self) -> ImageDatasets:
        """Read the official partition and make one lazily decoding dataset per split.

        Raises:
            FileNotFoundError: If the partition file, the image folder or listed images are
                missing.
        """
        self.files.require()
        partition = self.folder / PARTITION
        if self.verify_checksum:
            md5 = {name: md5 for _, md5, name in self.TORCHVISION_DATASET.file_list}[PARTITION]
            check_md5(partition, md5)
        splits = read_partition(partition)
        self._check_images([name for names in splits.values() for name in names])
        read = functools.partial(read_image, mode="RGB", size=self.image_size, crop=self.crop_size,
                                 original=ALIGNED_SIZE)
        images = self.folder / IMAGES
        return ImageDatasets(
            *(
                ImageFileDataset(
                    [images / name for name in names],
                    torch.zeros(len(names), dtype=torch.long),
                    read,
                )
                for names in (splits["train"], splits["val"], splits["test"])
            )
        )

    def _check_images(self, names: list[str]) -> None:
        """Raise ``FileNotFoundError`` if images listed in the partition are missing."""
        present = set(os.listdir(self.folder / IMAGES))  # one directory read, not 200k stats
        missing = [name for name in names if name not in present]
        if missing:
            raise self.files.error(
                [f"{IMAGES}/{name}" for name in missing],
                f"{PARTITION} lists them but they are not there (an interrupted extraction?).",
            )

    def _download(self) -> str:
        """Download with torchvision; return "" on success, else what went wrong."""
        step = functools.partial(
            self.TORCHVISION_DATASET, str(self.root), split="all", target_type=[], download=True
        )
        return try_download("Google Drive (torchvision.datasets.CelebA)", step)
