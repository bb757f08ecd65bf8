import doctest
import gzip
import shutil
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from genae_lightning.data import MNIST, Digits, FashionMNIST, ImageDataModule, SyntheticImages
from genae_lightning.data import base as base_module
from genae_lightning.data import mnist as mnist_module
from genae_lightning.data.base import seeded_split

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
TINY_TRAIN, TINY_TEST = 20, 6


# ---------------------------------------------------------------- helpers and fixtures


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """Write a uint8 array as an IDX file (magic 0x08 type, ndim; big-endian dims)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.with_suffix("").write_bytes(data)


def tiny_arrays(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    images = (np.arange(n * 28 * 28).reshape(n, 28, 28) + offset) % 256
    labels = (np.arange(n) + offset) % 10
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_tiny_dataset(raw: Path, gz: bool = True) -> None:
    """A few valid 28x28 images and labels in the four MNIST files (md5s do not match)."""
    for prefix, n, offset in [("train", TINY_TRAIN, 0), ("t10k", TINY_TEST, 3)]:
        images, labels = tiny_arrays(n, offset)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels, gz)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    write_tiny_dataset(tmp_path / "MNIST" / "raw")
    return tmp_path


def shared_raw(name: str) -> Path:
    raw = SHARED_DATA / name / "raw"
    if not all((raw / f).is_file() for f in FILES):
        pytest.skip(f"real {name} files not found in {raw} (../shared/data is absent)")
    return raw


def listing(folder: Path) -> list[tuple[str, int, float]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def real_mnist() -> MNIST:
    """MNIST read straight from the read-only shared folder (loaded once for the module)."""
    raw = shared_raw("MNIST")
    before = listing(raw.parent)
    dm = MNIST(root=str(SHARED_DATA), batch_size=64)
    dm.prepare_data()
    dm.setup("fit")
    assert listing(raw.parent) == before, "reading must not write next to the files"
    return dm


def check_batch(batch: tuple[torch.Tensor, torch.Tensor], dm: ImageDataModule) -> None:
    x, y = batch
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (dm.batch_size, *dm.image_shape) and y.shape == (dm.batch_size,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert 0 <= y.min() and y.max() < dm.num_classes


# ---------------------------------------------------------------- batches of every module

MODULES: dict[str, Callable[[Path], ImageDataModule]] = {
    "digits": lambda root: Digits(batch_size=8),
    "synthetic": lambda root: SyntheticImages(image_shape=(3, 12, 10), batch_size=4),
    "tiny_mnist": lambda root: MNIST(root=root, batch_size=4, val_size=4, verify_checksum=False),
}


@pytest.mark.parametrize("name", MODULES)
def test_batches_have_shape_dtype_and_range(name: str, tiny_root: Path) -> None:
    dm = MODULES[name](tiny_root)
    dm.prepare_data()
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        check_batch(next(iter(loader)), dm)


def test_train_loader_shuffles_and_drops_last() -> None:
    dm = SyntheticImages(num_samples=30, val_size=0, batch_size=8)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 30 // 8 and all(len(y) == 8 for _, y in batches)
    assert not torch.equal(torch.cat([x for x, _ in batches]), dm.train_dataset.images[:24])
    assert sum(len(y) for _, y in dm.val_dataloader()) == 0


def test_shape_and_classes_known_before_loading(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    assert MNIST(root=missing).image_shape == (1, 28, 28)
    assert FashionMNIST(root=missing).num_classes == 10
    assert (Digits().image_shape, Digits().num_classes) == ((1, 8, 8), 10)
    synthetic = SyntheticImages(image_shape=[3, 32, 32], num_classes=5)  # as the CLI may pass it
    assert synthetic.image_shape == (3, 32, 32) and synthetic.num_classes == 5
    assert not missing.exists()


def test_hparams_hold_the_subclass_arguments(tmp_path: Path) -> None:
    hparams = MNIST(root=str(tmp_path), val_size=100, verify_checksum=False).hparams
    assert hparams["root"] == str(tmp_path) and hparams["val_size"] == 100
    assert hparams["verify_checksum"] is False and hparams["batch_size"] == 128
    assert Digits(test_size=0.3).hparams["test_size"] == 0.3


def test_loader_before_setup_says_call_setup() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        Digits().train_dataloader()


# ---------------------------------------------------------------- seeded splits


def test_split_is_reproducible_and_depends_on_the_seed() -> None:
    def val_images(seed: int) -> torch.Tensor:
        dm = Digits(seed=seed)
        dm.setup("fit")
        return dm.val_dataset.images

    assert torch.equal(val_images(0), val_images(0))
    assert not torch.equal(val_images(0), val_images(1))


@pytest.mark.parametrize(("val_size", "n_val"), [(0.25, 5), (7, 7), (0, 0)])
def test_train_val_sizes_and_disjoint(val_size: int | float, n_val: int) -> None:
    dm = SyntheticImages(num_samples=20, val_size=val_size, batch_size=2)
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (
        20 - n_val,
        n_val,
        20,
    )
    # Random images are all distinct, so equal multisets of per-image sums = a partition.
    split = torch.cat([dm.train_dataset.images, dm.val_dataset.images]).sum((1, 2, 3)).sort().values
    assert torch.equal(split, dm.load_tensors().train_images.sum((1, 2, 3)).sort().values)


def test_seeded_split_indices_partition_the_range() -> None:
    kept, held = seeded_split(100, 0.3, seed=5, name="val_size")
    assert len(held) == 30 and set(kept.tolist()).isdisjoint(held.tolist())
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(100))
    assert doctest.testmod(base_module).failed == 0


def test_digits_test_split_sizes_and_scaling() -> None:
    dm = Digits(test_size=0.2, val_size=100, batch_size=16)
    dm.setup("test")
    assert len(dm.test_dataset) == round(0.2 * 1797) and len(dm.val_dataset) == 100
    assert len(dm.train_dataset) + len(dm.val_dataset) + len(dm.test_dataset) == 1797
    assert dm.train_dataset.images.max() == 1.0  # the digits' 16 maps to 1


# ---------------------------------------------------------------- real MNIST / Fashion-MNIST


def test_real_mnist_counts_and_first_labels(real_mnist: MNIST) -> None:
    dm = real_mnist
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (
        54000,
        6000,
        10000,
    )
    raw = dm.load_tensors()
    assert raw.train_images.shape == (60000, 1, 28, 28) and raw.train_images.dtype == torch.uint8
    assert (int(raw.train_labels[0]), int(raw.test_labels[0])) == (5, 7)
    assert torch.bincount(raw.test_labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    check_batch(next(iter(dm.train_dataloader())), dm)


def test_real_fashion_mnist_from_a_read_only_copy(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    shutil.copytree(shared_raw("FashionMNIST"), raw)
    for folder in (raw, raw.parent, tmp_path):
        folder.chmod(0o555)
    before = listing(tmp_path)
    try:
        dm = FashionMNIST(root=tmp_path, batch_size=32, val_size=0.5)
        dm.prepare_data()
        dm.setup("fit")
        assert listing(tmp_path) == before
    finally:
        for folder in (tmp_path, raw.parent, raw):
            folder.chmod(0o755)
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (
        30000,
        30000,
        10000,
    )
    assert torch.bincount(dm.test_dataset.labels).tolist() == [1000] * 10
    assert int(dm.load_tensors().train_labels[0]) == 9  # an ankle boot
    check_batch(next(iter(dm.val_dataloader())), dm)


# ---------------------------------------------------------------- missing, corrupt, tiny files


@pytest.mark.parametrize("dataset", [MNIST, FashionMNIST])
def test_missing_files_without_download(dataset: type[MNIST], tmp_path: Path) -> None:
    dm = dataset(root=tmp_path, download=False)
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as error:
            step()
        message = str(error.value)
        assert all(name in message for name in FILES)
        assert str(tmp_path / dataset.__name__ / "raw") in message and "--data.root" in message
    assert "download=False" in message or "prepare_data" in message


def test_missing_files_download_failure_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def offline(url: str, root: Path, filename: str, md5: str) -> None:
        calls.append(url)
        (Path(root) / filename).write_bytes(b"partial")  # must be cleaned up
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(mnist_module, "download_url", offline)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / FILES[1]).with_suffix("").write_bytes(b"x")  # an uncompressed copy counts as present
    with pytest.raises(FileNotFoundError, match="Download failed.*no network here") as error:
        MNIST(root=tmp_path).prepare_data()
    missing = [FILES[0], *FILES[2:]]
    assert all(name in str(error.value) for name in missing) and FILES[1] not in str(error.value)
    assert len(calls) == len(missing) * len(MNIST.TORCHVISION_DATASET.mirrors)
    assert sorted(p.name for p in raw.iterdir()) == ["train-labels-idx1-ubyte"]


def test_download_fetches_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "mirror"
    write_tiny_dataset(source)
    requested: list[tuple[str, str]] = []

    def fake_download(url: str, root: Path, filename: str, md5: str) -> None:
        requested.append((url, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copy(source / filename, Path(root) / filename)

    monkeypatch.setattr(mnist_module, "download_url", fake_download)
    dm = FashionMNIST(root=tmp_path / "data", batch_size=4, verify_checksum=False)
    dm.prepare_data()
    assert requested == [
        (FashionMNIST.TORCHVISION_DATASET.mirrors[0] + name, md5)
        for name, md5 in FashionMNIST.TORCHVISION_DATASET.resources
    ]
    dm.setup("fit")
    assert len(dm.train_dataset) + len(dm.val_dataset) == TINY_TRAIN


def test_tiny_idx_files_load_exactly(tiny_root: Path) -> None:
    raw = MNIST(root=tiny_root, verify_checksum=False).load_tensors()
    images, labels = tiny_arrays(TINY_TRAIN, 0)
    assert torch.equal(raw.train_images[:, 0], torch.from_numpy(images))
    assert torch.equal(raw.train_labels, torch.from_numpy(labels).long())
    assert raw.test_images.shape == (TINY_TEST, 1, 28, 28)


def test_uncompressed_idx_files_are_read(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "MNIST" / "raw", gz=False)
    # the fakes' md5s are not the originals' (tests/data/test_data_file_checks.py checks that)
    dm = MNIST(root=tmp_path, download=False, batch_size=2, verify_checksum=False)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.test_dataset) == TINY_TEST


def test_wrong_md5_raises(tiny_root: Path) -> None:
    with pytest.raises(ValueError, match="md5") as error:
        MNIST(root=tiny_root).setup("fit")
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert "Delete it and re-run" in message


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not gzip at all", "corrupt"),
        (gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03"), "magic"),
        (
            gzip.compress(
                b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28))
            ),
            "corrupt",
        ),
        (
            gzip.compress(
                b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (1, 8, 8)) + bytes(64)
            ),
            "shape",
        ),
    ],
    ids=["not-gzip", "labels-as-images", "truncated", "wrong-image-size"],
)
def test_corrupt_idx_file_names_the_file(tiny_root: Path, content: bytes, match: str) -> None:
    path = tiny_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as error:
        MNIST(root=tiny_root, verify_checksum=False).setup("fit")
    assert str(path) in str(error.value)


def test_image_and_label_counts_must_agree(tiny_root: Path) -> None:
    write_idx(tiny_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="t10k-labels"):
        MNIST(root=tiny_root, verify_checksum=False).setup("test")


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Digits(batch_size=0), "batch_size"),
        (lambda: Digits(batch_size=True), "batch_size"),
        (lambda: Digits(num_workers=-1), "num_workers"),
        (lambda: Digits(val_size=1.0), "val_size"),
        (lambda: Digits(val_size=-3), "val_size"),
        (lambda: Digits(val_size="0.1"), "val_size"),
        (lambda: Digits(test_size=1.5), "test_size"),
        (lambda: Digits(seed=-1), "seed"),
        (lambda: MNIST(batch_size=-5), "batch_size"),
        (lambda: SyntheticImages(image_shape=(28, 28)), "image_shape"),
        (lambda: SyntheticImages(image_shape=(1, 0, 28)), "image_shape"),
        (lambda: SyntheticImages(num_samples=0), "num_samples"),
        (lambda: SyntheticImages(num_classes=0), "num_classes"),
    ],
)
def test_bad_arguments_raise(make: Callable[[], ImageDataModule], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_val_size_larger_than_training_part_raises() -> None:
    with pytest.raises(ValueError, match="val_size=64 holds out 64 of 64"):
        SyntheticImages(num_samples=64, val_size=64).setup("fit")


def test_batch_larger_than_training_split_raises() -> None:
    dm = SyntheticImages(num_samples=10, batch_size=16)
    dm.setup("fit")
    with pytest.raises(ValueError, match="fewer than batch_size=16"):
        dm.train_dataloader()
