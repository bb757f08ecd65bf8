import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from genae_lightning.data import CIFAR10, CIFAR10Sub
from genae_lightning.data import cifar as cifar_module
from tests.data.test_datamodules import check_batch

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
FILES = [*BATCHES, "test_batch", "batches.meta"]
PER_BATCH = 10  # labels 0..9 once each per batch


def fake_batch(offset: int) -> dict:
    """10 images, one per class; image i is filled with (offset + label) so it can be traced."""
    labels = list(range(10))
    data = np.stack([np.full(3072, offset + y, np.uint8) for y in labels])
    data[:, 0] = 0  # the first red pixel is 0, the rest constant: checks the (3, 32, 32) layout
    return {"batch_label": "fake", "labels": labels, "data": data, "filenames": ["x.png"] * 10}


def write_cifar(folder: Path, names: tuple[str, ...] = CIFAR10.CLASS_NAMES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(BATCHES):
        (folder / name).write_bytes(pickle.dumps(fake_batch(10 * i)))
    (folder / "test_batch").write_bytes(pickle.dumps(fake_batch(100)))
    meta = {"num_cases_per_batch": PER_BATCH, "label_names": list(names), "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_cifar(tmp_path / "cifar-10-batches-py")
    return tmp_path


def test_reads_all_classes(root: Path) -> None:
    dm = CIFAR10(root=root, batch_size=4, val_size=10, verify_checksum=False)
    data = dm.load_tensors()
    assert data.train_images.shape == (50, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10, 3, 32, 32) and data.test_labels.dtype == torch.int64
    assert data.train_labels.tolist() == list(range(10)) * 5
    assert int(data.train_images[13, 0, 0, 1]) == 10 + 3  # batch 2, label 3, a red pixel
    assert int(data.train_images[13, 0, 0, 0]) == 0 and int(data.train_images[13, 2, 31, 31]) == 13
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (40, 10, 10)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        check_batch(next(iter(loader)), dm)


def test_class_subset_is_relabelled_in_the_given_order(root: Path) -> None:
    dm = CIFAR10(root=root, classes=["ship", "bird"], download=False, verify_checksum=False)
    assert dm.num_classes == 2 and dm.class_names == ("ship", "bird")
    data = dm.load_tensors()
    assert data.train_labels.tolist() == [1, 0] * 5 and data.test_labels.tolist() == [1, 0]
    # Image values encode the original label (offset + label): bird = 2, ship = 8.
    assert data.test_images[:, 0, 0, 1].tolist() == [102, 108]


def test_cifar10_sub_is_swae_bird_cat_ship(root: Path) -> None:
    dm = CIFAR10Sub(root=root, batch_size=2, val_size=3, verify_checksum=False)
    assert (CIFAR10Sub.NUM_CLASSES, dm.num_classes, dm.image_shape) == (3, 3, (3, 32, 32))
    assert dm.class_names == ("bird", "cat", "ship")
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (12, 3, 3)
    assert dm.test_dataset.labels.tolist() == [0, 1, 2]
    check_batch(next(iter(dm.train_dataloader())), dm)


@pytest.mark.parametrize("classes", [["bird", "dragon"], [], ["cat", "cat"]])
def test_bad_classes_list_the_valid_names(classes: list[str]) -> None:
    with pytest.raises(ValueError, match="airplane.*truck") as error:
        CIFAR10(classes=classes)
    assert "--data.classes" in str(error.value)


def test_wrong_md5_and_wrong_meta(root: Path) -> None:
    with pytest.raises(ValueError, match="md5.*verify_checksum false"):
        CIFAR10(root=root).setup("fit")
    write_cifar(root / "cifar-10-batches-py", names=tuple("abcdefghij"))
    with pytest.raises(ValueError, match="batches.meta names the classes"):
        CIFAR10(root=root, verify_checksum=False).setup("fit")


def test_corrupt_batch_names_the_file(root: Path) -> None:
    path = root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt") as error:
        CIFAR10(root=root, verify_checksum=False).load_tensors()
    assert str(path) in str(error.value)


def test_missing_files_without_download(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    dm = CIFAR10(root=tmp_path, download=False)
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as error:
            step()
        message = str(error.value)
        assert all(name in message for name in FILES)
        assert str(tmp_path / "cifar-10-batches-py") in message and "--data.root" in message
        assert "cifar-10-python.tar.gz" in message  # where to get the files by hand


def test_download_failure_is_reported_and_leaves_no_partial_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, download_root: Path, filename: str, md5: str) -> None:
        (Path(download_root) / filename).write_bytes(b"partial")
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(cifar_module, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="Download failed.*no network here") as error:
        CIFAR10(root=tmp_path).prepare_data()
    assert "data_batch_1" in str(error.value) and CIFAR10.TORCHVISION_DATASET.url in str(
        error.value
    )
    assert list(tmp_path.iterdir()) == []


def test_download_fetches_the_official_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested = []

    def fake(url: str, download_root: Path, filename: str, md5: str) -> None:
        requested.append((url, filename, md5))
        write_cifar(Path(download_root) / "cifar-10-batches-py")

    monkeypatch.setattr(cifar_module, "download_and_extract_archive", fake)
    dm = CIFAR10Sub(root=tmp_path / "data", batch_size=2, verify_checksum=False)
    dm.prepare_data()
    dm.prepare_data()  # files present: nothing is downloaded again
    tv = CIFAR10.TORCHVISION_DATASET
    assert requested == [(tv.url, tv.filename, tv.tgz_md5)]
    dm.setup("test")
    assert len(dm.test_dataset) == 3


def test_reads_from_a_read_only_root(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    before = sorted((p, p.stat().st_mtime) for p in root.rglob("*"))
    for path in (folder, root):
        path.chmod(0o555)
    try:
        dm = CIFAR10(root=root, batch_size=2, verify_checksum=False)
        dm.prepare_data()
        dm.setup("fit")
    finally:
        for path in (root, folder):
            path.chmod(0o755)
    assert sorted((p, p.stat().st_mtime) for p in root.rglob("*")) == before
    assert len(dm.test_dataset) == 10


class _Payload:
    """Unpickling this would create a marker file: a batch file crafted to run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_batch_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Payload(marker)}))
    with pytest.raises(ValueError,
                       match=r"data_batch_1 is corrupt .*needs the global (io|builtins)\.open"):
        cifar_module.read_pickle(path)
    assert not marker.exists()
