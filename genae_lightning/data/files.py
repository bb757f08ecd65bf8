"""Files the DataModules read: presence, md5 checks, downloads, one clear error, image decoding.

Every file-backed DataModule follows the same steps, written once here:

- ``RequiredFiles.prepare`` (in ``prepare_data``): when files are missing, download them if
  allowed, else raise a ``FileNotFoundError`` that names the files, the folder, why they are
  missing and how to fix it;
- ``RequiredFiles.require`` (when loading): raise the same error if files are still missing;
- ``try_download``: run one download, deleting its partial file if it fails, and say what
  went wrong instead of raising, so that every mirror or file can be tried;
- ``check_md5``: compare a file with the md5 of the original.

Reading never writes, so the folder that holds the files may be read-only.
"""

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.utils import calculate_md5
from torchvision.transforms.functional import pil_to_tensor

from genae_lightning.data.base import ImageDataModule
from genae_lightning.data.tensors import to_unit_float

MAX_LISTED = 8
"""Missing names listed in an error message; more are counted, not listed."""


def check_md5(path: Path, expected: str, known: Mapping[str, str] | None = None) -> None:
    """Raise ``ValueError`` unless the file at ``path`` has md5 ``expected``.

    Args:
        path: The file.
        expected: The md5 of the original file (hex digest).
        known: What other files are, by md5 (e.g. another data set's file of the same name),
            named in the message when the file is one of them.

    Raises:
        ValueError: If the md5 differs (the message says how to fix it).
    """
    got = calculate_md5(path)
    if got != expected:
        other = (known or {}).get(got)
        what = f"it is {other}" if other else "the file is corrupt or not the original"
        raise ValueError(
            f"{path} has md5 {got}, expected {expected}: {what}. Delete it and re-run to "
            f"download it again (or pass --data.verify_checksum false to read it anyway)."
        )


def try_download(source: str, step: Callable[[], object], partial_file: Path | None = None) -> str:
    """Run one download ``step``; on failure delete its partial file and say what went wrong.

    Args:
        source: What is downloaded from where (a URL), for the message.
        step: The download, e.g. ``functools.partial(download_url, url, folder, name, md5)``.
        partial_file: The file the step writes, deleted if it fails (no partial file is left).

    Returns:
        ``""`` on success, else ``"{source}: {error type}: {error}"``.
    """
    try:
        step()
    except Exception as error:  # network, HTTP, permission, checksum or archive errors
        if partial_file is not None:
            partial_file.unlink(missing_ok=True)
        return f"{source}: {type(error).__name__}: {error}"
    return ""


@dataclass(frozen=True)
class RequiredFiles:
    """The files a DataModule reads, where they are, and what to say when some are missing.

    Args:
        dataset: Name of the data set in messages, e.g. ``"CIFAR10"``.
        folder: Folder the files are read from.
        names: The files (or folders), relative to ``folder``.
        layout: What a folder passed as ``--data.root`` must hold, e.g.
            ``"cifar-10-batches-py/"``.
        source: Where the original files come from, for a manual download (may be empty).
        note: Said after the list of missing names, e.g. what else counts as present.
        present: Whether a path counts as present; by default, whether it is a file.
    """

    dataset: str
    folder: Path
    names: Sequence[str]
    layout: str
    source: str = ""
    note: str = ""
    present: Callable[[Path], bool] = Path.is_file

    def missing(self) -> list[str]:
        """The names that are not present in ``folder``, in order."""
        return [name for name in self.names if not self.present(self.folder / name)]

    def require(self) -> None:
        """Raise ``FileNotFoundError`` if files are missing (call it before reading)."""
        missing = self.missing()
        if missing:
            raise self.error(missing, "prepare_data() did not run or did not fetch them.")

    def prepare(self, download: bool, fetch: Callable[[list[str]], str]) -> None:
        """Fetch the missing files when ``download`` is on (for ``prepare_data``).

        Args:
            download: Whether downloading is allowed.
            fetch: Downloads the given missing names; returns ``""`` on success, else what
                went wrong (see :func:`try_download`).

        Raises:
            FileNotFoundError: If files are missing and downloading is off, or they are
                still missing after the download.
        """
        missing = self.missing()
        if not missing:
            return
        if not download:
            raise self.error(missing, "download=False, so nothing was downloaded.")
        errors = fetch(missing)
        still_missing = self.missing()
        if still_missing:
            reason = f"Download failed: {errors}." if errors else "The download did not make them."
            raise self.error(still_missing, reason)

    def error(self, missing: list[str], reason: str) -> FileNotFoundError:
        """The error for ``missing`` names: what is missing, where, why, and how to fix it.

        Args:
            missing: The missing names.
            reason: Why they are missing, as a sentence.

        Returns:
            The error, to raise.
        """
        listed = ", ".join(missing[:MAX_LISTED])
        if len(missing) > MAX_LISTED:
            listed += f", ... ({len(missing)} in all)"
        note = f" ({self.note})" if self.note else ""
        source = f" (from {self.source})" if self.source else ""
        return FileNotFoundError(
            f"{self.dataset} files missing from {self.folder.resolve()}: {listed}{note}. "
            f"{reason} To fix: put the original files{source} in that folder, or point "
            f"--data.root at a folder that holds {self.layout}, or run with network access "
            f"and --data.download true."
        )


def read_image(
    path: Path,
    mode: Literal["L", "RGB"],
    size: int,
    crop: int | None = None,
    original: tuple[int, int] | None = None,
) -> Tensor:
    """Decode an image file, centre-crop it to a square, and resize it to ``size x size``.

    Resizing is PIL's bilinear filter, which is antialiased when shrinking (as torchvision's
    ``Resize`` on PIL images); the centre crop is placed as torchvision's ``CenterCrop``.

    Args:
        path: The image file (any format PIL reads).
        mode: ``"L"`` for grayscale (one channel) or ``"RGB"`` (three channels).
        size: Side of the square output image.
        crop: Side of the centred square cut out before resizing; ``None`` keeps the whole
            image (which is then resized to a square).
        original: ``(width, height)`` of the data set's original images; a file of another
            size is refused (not silently resized). ``None``: any size.

    Returns:
        uint8 image of shape ``(C, size, size)``, ``C`` = 1 for ``"L"``, 3 for ``"RGB"``.

    Raises:
        ValueError: If the file is not a readable image, is not of size ``original`` or is
            smaller than ``crop``.
    """
    try:
        with Image.open(path) as file:
            image = file.convert(mode)
    except OSError as error:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(
            f"{path} could not be read as an image ({error}); replace it with the original file."
        ) from error
    width, height = image.size
    if original is not None and (width, height) != tuple(original):
        raise ValueError(
            f"{path} is {width}x{height} pixels, expected {original[0]}x{original[1]} (the "
            f"original images' size). Put the original files there (delete the folder and re-run "
            f"to download them again); to train on smaller images, pass --data.image_size "
            f"instead of resizing the files."
        )
    if crop is not None:
        if crop > min(width, height):
            raise ValueError(
                f"{path} is {width}x{height}, smaller than the {crop}x{crop} centre crop; "
                f"pass a smaller --data.crop_size or use the original images."
            )
        left, top = round((width - crop) / 2), round((height - crop) / 2)
        image = image.crop((left, top, left + crop, top + crop))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return pil_to_tensor(image)  # (C, size, size) uint8


class ImageFileDataset(Dataset[tuple[Tensor, Tensor]]):
    """``(image, label)`` pairs decoded from image files when fetched, not held in memory.

    For data sets too large to decode up front (CelebA's 200k JPEGs). It holds only paths and
    labels, so it pickles cheaply into DataLoader worker processes.

    Args:
        paths: The image files, one per sample.
        labels: Integer class labels, int64 of shape (N,).
        read: Decodes one file into a uint8 image (C, H, W), e.g. a ``functools.partial`` of
            :func:`read_image` (a module-level function, so that it pickles).
    """

    def __init__(self, paths: Sequence[Path], labels: Tensor, read: Callable[[Path], Tensor]):
        if len(paths) != len(labels):
            raise ValueError(
                f"ImageFileDataset got {len(paths)} paths but {len(labels)} labels; "
                f"expected one label per path."
            )
        self.paths = list(paths)
        self.labels = labels
        self.read = read

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_unit_float(self.read(self.paths[index])), self.labels[index]


class FileDataModule(ImageDataModule):
    """An :class:`ImageDataModule` that reads original files under ``root``.

    ``prepare_data`` downloads the missing files when ``download`` is on, otherwise it raises the
    error of :class:`RequiredFiles`. Subclasses implement ``files`` (what is read, from where)
    and ``download_missing`` (fetch the named files; return "" on success, else what went
    wrong), and ``load_tensors`` or ``load_datasets``.

    Args:
        root: Folder that holds the dataset's files (the layout is the subclass's). May be
            read-only when the files are there.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the training images: a count (int) or a
            fraction (float in [0, 1)).
        seed: Seed of the train/val split; the same seed gives the same split.
        download: Download missing files from the dataset's official source (needs network).
        verify_checksum: Check each file against the original's md5 before reading it.
    """

    def __init__(
        self,
        root: str | Path = "data",
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        val_size: int | float = 0.1,
        seed: int = 0,
        download: bool = True,
        verify_checksum: bool = True,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, val_size=val_size, seed=seed,
            in_memory=in_memory,
        )
        self.root = Path(root)
        self.download = download
        self.verify_checksum = verify_checksum

    @property
    @abc.abstractmethod
    def files(self) -> RequiredFiles:
        """The files read, where they are, and what to say when some are missing."""

    @abc.abstractmethod
    def download_missing(self, missing: list[str]) -> str:
        """Download the ``missing`` files; return "" on success, else what went wrong."""

    def prepare_data(self) -> None:
        """Download the missing files when ``download`` is on; otherwise just check for them.

        Raises:
            FileNotFoundError: If files are missing and could not be downloaded.
        """
        self.files.prepare(self.download, self.download_missing)
