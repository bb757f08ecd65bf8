import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genae_lightning.data import Coil20
from genae_lightning.data import coil20 as coil20_module
from tests.data.test_datamodules import check_batch

SIZE = 128  # the size of the real images (another size is refused); resized to image_size


def write_coil20(folder: Path) -> None:
    """The 1440 PNGs named as in coil-20-proc/, each a flat gray of (object * 10 + pose % 10)."""
    folder.mkdir(parents=True, exist_ok=True)
    for obj in range(1, 21):
        for pose in range(72):
            value = obj * 10 + pose % 10
            Image.fromarray(np.full((SIZE, SIZE), value, np.uint8), mode="L").save(
                folder / f"obj{obj}__{pose}.png"
            )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coil")
    write_coil20(root / "coil-20-proc")
    return root


def test_labels_shapes_and_seeded_splits(root: Path) -> None:
    dm = Coil20(root=root, image_size=8, batch_size=16, test_size=0.25, val_size=80, seed=3)
    assert dm.image_shape == (1, 8, 8) and Coil20.IMAGE_SHAPE == (1, 128, 128)
    dm.prepare_data()
    dm.setup("fit")
    sizes = (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset))
    assert sizes == (1080 - 80, 80, 360)
    images = torch.cat([dm.train_dataset.images, dm.val_dataset.images, dm.test_dataset.images])
    labels = torch.cat([dm.train_dataset.labels, dm.val_dataset.labels, dm.test_dataset.labels])
    assert images.shape == (1440, 1, 8, 8) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [72] * 20
    # A flat image stays flat when resized; its gray value says its object = label + 1.
    assert torch.equal(images[:, 0, 0, 0] // 10, labels + 1)
    assert torch.equal(images.amin((1, 2, 3)), images.amax((1, 2, 3)))
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        check_batch(next(iter(loader)), dm)
    same = Coil20(root=root, image_size=8, test_size=0.25, val_size=80, seed=3)
    same.setup("fit")
    assert torch.equal(same.test_dataset.labels, dm.test_dataset.labels)


def test_missing_files_without_download(tmp_path: Path) -> None:
    folder = tmp_path / "coil-20-proc"
    folder.mkdir()
    Image.new("L", (SIZE, SIZE)).save(folder / "obj1__0.png")
    dm = Coil20(root=tmp_path, download=False)
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as error:
            step()
        message = str(error.value)
        assert "obj1__1.png" in message and "obj1__0.png" not in message
        assert "(1439 in all)" in message and str(folder) in message
        assert "coil-20-proc.zip" in message and "--data.root" in message


def test_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, download_root: Path) -> None:
        (Path(download_root) / "coil-20-proc.zip").write_bytes(b"partial")
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(coil20_module, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="Download failed.*no network here"):
        Coil20(root=tmp_path).prepare_data()
    assert list(tmp_path.iterdir()) == []


def test_download_extracts_the_official_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    requested = []

    def fake(url: str, download_root: Path) -> None:
        requested.append(url)
        (Path(download_root) / "coil-20-proc").symlink_to(root / "coil-20-proc")

    monkeypatch.setattr(coil20_module, "download_and_extract_archive", fake)
    dm = Coil20(root=tmp_path, image_size=4)
    dm.prepare_data()
    assert requested == [Coil20.URL]
    assert Coil20.URL.endswith("/coil-20/coil-20-proc.zip")


def test_unreadable_png_names_the_file(tmp_path: Path, root: Path) -> None:
    folder = tmp_path / "coil-20-proc"
    folder.mkdir()
    for path in (root / "coil-20-proc").iterdir():
        (folder / path.name).symlink_to(path)
    (folder / "obj5__7.png").unlink()
    (folder / "obj5__7.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not be read as an image") as error:
        Coil20(root=tmp_path).setup("fit")
    assert "obj5__7.png" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"image_size": 0}, "image_size"), ({"test_size": 1.0}, "test_size")]
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Coil20(**kwargs)
