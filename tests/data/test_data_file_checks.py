"""Data files are checked before they are read: uncompressed IDX files by md5, images by size.

Self-contained: small fake files only (the real ones are tens of MB and need not be present).
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genae_lightning.data import MNIST, CelebA, Coil20, FashionMNIST
from genae_lightning.data import mnist as mnist_module
from tests.data.test_celeba import face, write_celeba
from tests.data.test_datamodules import TINY_TEST, write_tiny_dataset

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def uncompressed(tmp_path: Path) -> Path:
    """A root whose MNIST/raw holds four small valid IDX files, uncompressed (not the originals)."""
    write_tiny_dataset(tmp_path / "MNIST" / "raw", gz=False)
    return tmp_path


def test_uncompressed_file_with_wrong_md5_is_refused(uncompressed: Path) -> None:
    path = uncompressed / "MNIST" / "raw" / "train-images-idx3-ubyte"
    with pytest.raises(ValueError) as error:
        MNIST(root=uncompressed, download=False).setup("fit")
    message = str(error.value)
    assert str(path) in message, "names the file"
    assert f"has md5 {md5(path)}, expected 6bbc9ace898e44ae57da46a324031adb" in message
    assert "corrupt or not the original" in message
    assert "Delete it and re-run" in message and "--data.verify_checksum false" in message
    # the way out the message names: read them anyway
    dm = MNIST(root=uncompressed, download=False, verify_checksum=False)
    dm.setup("test")
    assert len(dm.test_dataset) == TINY_TEST


def test_fashion_mnist_file_in_the_mnist_folder_is_named(
    uncompressed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Fashion-MNIST file (here: a fake recorded as one) in MNIST/raw is said to be one."""
    raw = uncompressed / "MNIST" / "raw"
    fashion = mnist_module.IDX_MD5S["FashionMNIST"]
    for name in NAMES:
        monkeypatch.setitem(fashion, name, md5(raw / name))
    with pytest.raises(ValueError, match="it is FashionMNIST's train-images-idx3-ubyte"):
        MNIST(root=uncompressed, download=False).setup("fit")
    # the same files in FashionMNIST/raw are what they claim to be
    (uncompressed / "FashionMNIST").symlink_to(uncompressed / "MNIST")
    dm = FashionMNIST(root=uncompressed, download=False)
    dm.setup("test")
    assert len(dm.test_dataset) == TINY_TEST


def test_uncompressed_files_are_checked_against_the_decompressed_originals() -> None:
    recorded = mnist_module.IDX_MD5S
    assert sorted(recorded) == ["FashionMNIST", "MNIST"]
    for files in recorded.values():
        assert sorted(files) == sorted(NAMES)
        assert all(len(h) == 32 and set(h) <= set("0123456789abcdef") for h in files.values())
    assert set(recorded["MNIST"].values()).isdisjoint(recorded["FashionMNIST"].values())


# ---------------------------------------------------------------- images of the wrong size


def coil20_folder(root: Path, odd: dict[str, int]) -> Path:
    """coil-20-proc/ of 1440 links to one flat 128x128 PNG, except ``odd`` names: side sizes."""
    folder = root / "coil-20-proc"
    folder.mkdir(parents=True)
    good = root / "good.png"
    Image.fromarray(np.full((128, 128), 90, np.uint8), mode="L").save(good)
    for name in Coil20(root=root).files.names:
        if name in odd:
            Image.new("L", (odd[name], odd[name]), 90).save(folder / name)
        else:
            (folder / name).symlink_to(good)
    return folder


def test_coil20_image_of_another_size_is_refused(tmp_path: Path) -> None:
    folder = coil20_folder(tmp_path, {"obj7__3.png": 8})
    with pytest.raises(ValueError) as error:
        Coil20(root=tmp_path, image_size=32, download=False).setup("fit")
    message = str(error.value)
    assert str(folder / "obj7__3.png") in message
    assert "is 8x8 pixels, expected 128x128" in message
    assert "--data.image_size" in message


def test_coil20_originals_are_resized(tmp_path: Path) -> None:
    coil20_folder(tmp_path, {})
    dm = Coil20(root=tmp_path, image_size=16, download=False)
    dm.setup("fit")
    assert dm.train_dataset.images.shape[1:] == (1, 16, 16)


def test_celeba_image_of_another_size_is_refused(tmp_path: Path) -> None:
    names = write_celeba(tmp_path)
    path = tmp_path / "celeba" / "img_align_celeba" / names[1]
    face(1).resize((200, 240)).save(path)  # larger than the crop: resized silently before
    dm = CelebA(root=tmp_path, batch_size=2, verify_checksum=False)
    dm.setup("fit")  # images are decoded when fetched
    with pytest.raises(ValueError, match=r"is 200x240 pixels, expected 178x218") as error:
        dm.train_dataset[1]
    assert str(path) in str(error.value)
