import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from genae_lightning.data import SVHN
from genae_lightning.data import svhn as svhn_module
from tests.data.test_datamodules import check_batch

FILES = ["train_32x32.mat", "test_32x32.mat"]


def write_mat(path: Path, n: int) -> None:
    """n images in SVHN's layout: X (32, 32, 3, n); y (n, 1) in 1..10 (10 = digit 0)."""
    images = np.zeros((32, 32, 3, n), np.uint8)
    for i in range(n):
        images[:, :, 0, i] = i  # red channel = index
        images[0, 1, 2, i] = 200  # one blue pixel at row 0, column 1
    labels = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)
    scipy.io.savemat(path, {"X": images, "y": labels})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_mat(tmp_path / FILES[0], 20)
    write_mat(tmp_path / FILES[1], 10)
    return tmp_path


def test_reads_images_and_maps_label_10_to_0(root: Path) -> None:
    dm = SVHN(root=root, batch_size=4, val_size=4, verify_checksum=False)
    data = dm.load_tensors()
    assert data.train_images.shape == (20, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.train_labels.dtype == torch.int64
    assert data.train_labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0] * 2
    assert torch.equal(data.test_images[:, 0, 5, 7], torch.arange(10, dtype=torch.uint8))
    assert int(data.train_images[3, 2, 0, 1]) == 200 and int(data.train_images[3, 2, 1, 0]) == 0
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (16, 4, 10)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        check_batch(next(iter(loader)), dm)


def test_wrong_md5_raises(root: Path) -> None:
    with pytest.raises(ValueError, match="md5") as error:
        SVHN(root=root).setup("fit")
    assert "e26dedcc434d2e4c54c9b2d4a06d8373" in str(error.value)


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda path: path.write_bytes(b"not a mat file" * 20), "corrupt"),
        (lambda path: scipy.io.savemat(path, {"X": np.zeros((28, 28, 1, 2))}), "expected"),
        (
            lambda path: scipy.io.savemat(
                path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [11]])}
            ),
            "1..10",
        ),
    ],
    ids=["not-mat", "wrong-shape", "bad-labels"],
)
def test_bad_mat_file_names_the_file(root: Path, write, match: str) -> None:
    path = root / FILES[0]
    write(path)
    with pytest.raises(ValueError, match=match) as error:
        SVHN(root=root, verify_checksum=False).setup("fit")
    assert str(path) in str(error.value)


def test_missing_files_without_download(tmp_path: Path) -> None:
    dm = SVHN(root=tmp_path, download=False)
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as error:
            step()
        message = str(error.value)
        assert all(name in message for name in FILES)
        assert str(tmp_path) in message and "--data.root" in message


def test_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def offline(url: str, root: Path, filename: str, md5: str) -> None:
        calls.append(url)
        (Path(root) / filename).write_bytes(b"partial")
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(svhn_module, "download_url", offline)
    write_mat(tmp_path / FILES[1], 2)  # the test file is there; only train is fetched
    with pytest.raises(FileNotFoundError, match="Download failed.*no network here") as error:
        SVHN(root=tmp_path).prepare_data()
    assert FILES[0] in str(error.value) and FILES[1] not in str(error.value).split("Download")[0]
    assert calls == ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILES[1]]


def test_download_fetches_missing_files_with_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested = []

    def fake(url: str, root: Path, filename: str, md5: str) -> None:
        requested.append((filename, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        write_mat(Path(root) / filename, 6)

    monkeypatch.setattr(svhn_module, "download_url", fake)
    dm = SVHN(root=tmp_path / "svhn", batch_size=2, val_size=2, verify_checksum=False)
    dm.prepare_data()
    assert requested == [
        ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
        ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    ]
    dm.setup("fit")
    assert len(dm.train_dataset) == 4
