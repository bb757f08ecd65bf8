"""COIL-20 (Columbia Object Image Library), processed version: 20 objects x 72 poses, grayscale.

Files live in ``{root}/coil-20-proc/obj{1..20}__{0..71}.png``, what the official archive
``coil-20-proc.zip`` extracts to. Reading never writes, so ``root`` may be read-only; only a
download (in ``prepare_data``) writes there.
"""

import functools
from pathlib import Path

import torch
from torchvision.datasets.utils import download_and_extract_archive

from genae_lightning.data.base import (
    ImageDataModule,
    ImageTensors,
    check_int,
    check_split_size,
    seeded_test_split,
)
from genae_lightning.data.files import RequiredFiles, read_image, try_download

NUM_OBJECTS = 20
NUM_POSES = 72  # one image every 5 degrees of rotation
ORIGINAL_SIZE = (128, 128)  # (width, height) of every processed image


class Coil20(ImageDataModule):
    """COIL-20, processed: 1440 grayscale images (20 objects x 72 poses), 1x128x128 by default.

    The label of ``obj{k}__{pose}.png`` is ``k - 1``. COIL-20 has no official test split, so a
    seeded ``test_size`` part is held out of all 1440 images, then ``val_size`` of the rest.
    ``image_size`` resizes the 128x128 originals (bilinear, antialiased), e.g. to 32 or 64.
    Missing files are downloaded (the official archive, then extracted) in ``prepare_data``
    when ``download`` is on; the site publishes no checksum, so none is checked.

    Args:
        root: Folder that holds ``coil-20-proc/``. May be read-only when the files are there.
        image_size: Side of the square images the DataModule yields (the originals are 128).
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the training part: a count (int) or a
            fraction (float in [0, 1)).
        test_size: Test samples held out of all 1440: a count (int) or a fraction (float in
            [0, 1)).
        seed: Seed of the test and val splits; the same seed gives the same splits.
        download: Download the official archive if files are missing (needs network).
    """

    IMAGE_SHAPE = (1, 128, 128)
    NUM_CLASSES = NUM_OBJECTS
    URL = (
        "https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-20/coil-20-proc.zip"
    )
    """The official archive of the processed images."""
    FOLDER = "coil-20-proc"
    """The folder the archive extracts to, inside ``root``."""

    def __init__(
        self,
        root: str | Path = "data",
        image_size: int = 128,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
        seed: int = 0,
        download: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, val_size=val_size, seed=seed,
            in_memory=in_memory,
        )
        check_int("image_size", image_size, minimum=1)
        check_split_size("test_size", test_size)
        self.root = Path(root)
        self.image_size = image_size
        self.test_size = test_size
        self.download = download

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(1, image_size, image_size)`` of one image; known without loading data."""
        return (1, self.image_size, self.image_size)

    @property
    def files(self) -> RequiredFiles:
        """The 1440 PNG files, and what to say when some are missing."""
        names = [
            f"obj{obj}__{pose}.png"
            for obj in range(1, NUM_OBJECTS + 1)
            for pose in range(NUM_POSES)
        ]
        return RequiredFiles(
            dataset="Coil20",
            folder=self.root / self.FOLDER,
            names=names,
            layout=f"{self.FOLDER}/",
            source=f"{self.URL}, extracted",
        )

    def prepare_data(self) -> None:
        """Download and extract the official archive if files are missing and ``download`` is on.

        Raises:
            FileNotFoundError: If files are missing and could not be downloaded.
        """
        self.files.prepare(self.download, lambda missing: self._download())

    def load_tensors(self) -> ImageTensors:
        """Decode (and resize) all 1440 images, then hold out the seeded test part.

        Raises:
            ValueError: If an image is unreadable or not 128x128 (the message names it).
        """
        files = self.files
        files.require()
        read = functools.partial(read_image, mode="L", size=self.image_size,
                                 original=ORIGINAL_SIZE)
        images = torch.stack([read(files.folder / name) for name in files.names])  # (N,1,S,S)
        labels = torch.arange(NUM_OBJECTS).repeat_interleave(NUM_POSES)  # (N,), obj{k} -> k-1
        return seeded_test_split(images, labels, self.test_size, self.seed)

    def _download(self) -> str:
        """Download and extract the official archive; return "" on success, else the error."""
        archive = self.URL.rsplit("/", 1)[1]
        step = functools.partial(download_and_extract_archive, self.URL, self.root)
        return try_download(self.URL, step, partial_file=self.root / archive)
