import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genae_lightning.data import CelebA
from genae_lightning.data.files import ImageFileDataset
from tests.data.test_datamodules import check_batch

PARTITION = {"train": 6, "val": 3, "test": 2}  # images per official split in the fake set


def face(index: int) -> Image.Image:
    """A 178x218 image: red border, the centred 140x140 square blue (+ index in green)."""
    pixels = np.zeros((218, 178, 3), np.uint8)
    pixels[..., 0] = 255
    pixels[39:179, 19:159] = (0, 10 * index, 255)  # rows 39..178, columns 19..158
    return Image.fromarray(pixels)


def write_celeba(root: Path) -> list[str]:
    """The torchvision layout: celeba/img_align_celeba/*.jpg and celeba/list_eval_partition.txt."""
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    names, lines = [], []
    for code, count in enumerate(PARTITION.values()):
        for _ in range(count):
            name = f"{len(names) + 1:06d}.jpg"
            face(len(names)).save(images / name, quality=100, subsampling=0)
            names.append(name)
            lines.append(f"{name} {code}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_celeba(tmp_path)
    return tmp_path


def test_official_partition_lazy_decoding_and_centre_crop(root: Path) -> None:
    dm = CelebA(root=root, batch_size=2, verify_checksum=False)
    assert dm.image_shape == (3, 64, 64) and dm.num_classes == 1
    dm.prepare_data()
    dm.setup("fit")
    assert all(isinstance(d, ImageFileDataset) for d in (dm.train_dataset, dm.test_dataset))
    sizes = (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset))
    assert sizes == tuple(PARTITION.values())
    assert [p.name for p in dm.test_dataset.paths] == ["000010.jpg", "000011.jpg"]
    x, y = dm.val_dataset[1]  # image 7 of the file (index 7)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and int(y) == 0
    # The 140x140 centre crop holds only the blue square, none of the red border.
    assert x[0].max() < 0.1 and x[2].min() > 0.9
    assert abs(float(x[1].mean()) - 70 / 255) < 0.02
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        check_batch(next(iter(loader)), dm)


def test_image_and_crop_size(root: Path) -> None:
    dm = CelebA(root=root, image_size=32, crop_size=178, batch_size=2, verify_checksum=False)
    assert dm.image_shape == (3, 32, 32)
    dm.setup("test")
    x, _ = dm.test_dataset[0]
    assert x.shape == (3, 32, 32)
    assert x[0, :, 0].mean() > 0.9  # a 178-wide crop keeps the red border at the sides


def test_datasets_pickle_for_worker_processes(root: Path) -> None:
    dm = CelebA(root=root, batch_size=2, verify_checksum=False)
    dm.setup("fit")
    copy = pickle.loads(pickle.dumps(dm.train_dataset))
    assert torch.equal(copy[3][0], dm.train_dataset[3][0])


def test_hparams_are_celeba_arguments_only(tmp_path: Path) -> None:
    hparams = CelebA(root=tmp_path, image_size=32).hparams
    assert "val_size" not in hparams and "seed" not in hparams
    assert CelebA(**hparams).image_shape == (3, 32, 32)


def test_wrong_partition_md5_and_bad_partition_line(root: Path) -> None:
    with pytest.raises(ValueError, match="d32c9cbf5e040fd4025c592c306e6668"):
        CelebA(root=root).setup("fit")
    partition = root / "celeba" / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\n000002.jpg 7\n")
    with pytest.raises(ValueError, match="line 2.*000002.jpg 7"):
        CelebA(root=root, verify_checksum=False).setup("fit")


def test_images_listed_but_missing_are_named(root: Path) -> None:
    (root / "celeba" / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="img_align_celeba/000004.jpg") as error:
        CelebA(root=root, verify_checksum=False).setup("fit")
    assert "000005.jpg" not in str(error.value)


def test_missing_files_without_download(tmp_path: Path) -> None:
    dm = CelebA(root=tmp_path, download=False)
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(FileNotFoundError) as error:
            step()
        message = str(error.value)
        assert "img_align_celeba" in message and "list_eval_partition.txt" in message
        assert str(tmp_path / "celeba") in message and "--data.root" in message
        assert "mmlab.ie.cuhk.edu.hk" in message


def fake_torchvision(fetch: Callable[[Path], None], calls: list) -> type:
    """A stand-in for torchvision's CelebA class whose constructor runs ``fetch(root)``."""

    class FakeTorchvisionCelebA:
        base_folder = "celeba"
        file_list = CelebA.TORCHVISION_DATASET.file_list

        def __init__(self, root: str, split: str, target_type: list, download: bool) -> None:
            calls.append((root, split, target_type, download))
            fetch(Path(root))

    return FakeTorchvisionCelebA


def test_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(root: Path) -> None:
        raise RuntimeError("To download files from GDrive, 'gdown' is required.")

    calls: list = []
    monkeypatch.setattr(CelebA, "TORCHVISION_DATASET", fake_torchvision(offline, calls))
    with pytest.raises(FileNotFoundError, match="Download failed.*gdown.*is required") as error:
        CelebA(root=tmp_path).prepare_data()
    assert calls == [(str(tmp_path), "all", [], True)]
    assert "list_eval_partition.txt" in str(error.value)


def test_download_with_torchvision_then_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list = []
    monkeypatch.setattr(CelebA, "TORCHVISION_DATASET", fake_torchvision(write_celeba, calls))
    dm = CelebA(root=tmp_path, batch_size=2, verify_checksum=False)
    dm.prepare_data()
    dm.prepare_data()  # files present: nothing is downloaded again
    assert len(calls) == 1
    dm.setup("test")
    assert len(dm.test_dataset) == PARTITION["test"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"image_size": 0}, "image_size"), ({"crop_size": 200}, "crop_size.*178x218")],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CelebA(**kwargs)
