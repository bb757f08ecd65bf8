"""``genae traverse --dims``: separate arguments, a comma list or a JSON list; checked dims."""

import numpy as np
import pytest
import torch
from PIL import Image

from genae_lightning import cli
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE
from tests.conftest import tiny_trainer

LATENT_DIM, SIDE, STEPS = 4, 8, 5
DATA = ["--data", "SyntheticImages", "--data.image_shape", "[1, 8, 8]",
        "--data.num_samples", "40"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny trained AE checkpoint: 8x8 images, a 4-dimensional latent space."""
    tmp_path = tmp_path_factory.mktemp("traverse")
    torch.manual_seed(0)
    model = AE(image_shape=(1, SIDE, SIDE), latent_dim=LATENT_DIM,
               backbone=MLPBackbone(hidden=[16]))
    trainer = tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, SIDE, SIDE), num_samples=40,
                                                  batch_size=4))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    return path


def traverse(ckpt, out, *dims: str) -> np.ndarray:
    """Run ``genae traverse`` (``--dims`` followed by ``dims`` when given); the grid's pixels."""
    cli.main(["traverse", "--ckpt_path", str(ckpt), "--device", "cpu", *DATA,
              "--steps", str(STEPS), "--out", str(out), *(["--dims", *dims] if dims else [])])
    return np.asarray(Image.open(out).convert("L"), dtype=np.int16)


def grid_row(grid: np.ndarray, row: int) -> np.ndarray:
    """Row ``row`` of a traversal grid saved with padding 1 (its images, without the padding)."""
    top = 1 + row * (SIDE + 1)
    return grid[top:top + SIDE]


def test_dims_as_separate_arguments_give_those_rows(ckpt, tmp_path) -> None:
    every = traverse(ckpt, tmp_path / "all.png")  # no --dims: one row per latent dimension
    assert every.shape == (LATENT_DIM * (SIDE + 1) + 1, STEPS * (SIDE + 1) + 1)
    grid = traverse(ckpt, tmp_path / "three.png", "0", "1", "2")
    assert grid.shape == (3 * (SIDE + 1) + 1, STEPS * (SIDE + 1) + 1)  # three rows
    for row, dim in enumerate((0, 1, 2)):  # row i sweeps dimension i (up to rounding)
        assert np.abs(grid_row(grid, row) - grid_row(every, dim)).max() <= 1
    picked = traverse(ckpt, tmp_path / "picked.png", "3", "1")
    for row, dim in enumerate((3, 1)):
        assert np.abs(grid_row(picked, row) - grid_row(every, dim)).max() <= 1
    assert np.abs(grid_row(picked, 0) - grid_row(every, 0)).max() > 1  # not simply the first


@pytest.mark.parametrize("dims", [["0,1,2"], ["[0,1,2]"], ["[0,", "1,", "2]"], ["0", "1,2"]])
def test_comma_and_json_lists_are_still_accepted(ckpt, tmp_path, dims) -> None:
    reference = traverse(ckpt, tmp_path / "ref.png", "0", "1", "2")
    assert np.array_equal(traverse(ckpt, tmp_path / "other.png", *dims), reference)


@pytest.mark.parametrize(("dims", "message"), [
    (["0", "4"], "--dims 4 is out of range: the checkpoint's latent dim is 4, so --dims takes "
                 "0 to 3"),
    (["-1"], "--dims -1 is out of range: the checkpoint's latent dim is 4"),
    (["0", "x"], "--dims 'x' is not a latent dimension: give whole numbers, e.g. --dims 0 1 2"),
    (["1.5"], "--dims '1.5' is not a latent dimension"),
    (["[]"], "--dims '[]' names no latent dimension"),
])
def test_bad_dims_are_named_with_the_latent_dim(ckpt, tmp_path, capsys, dims, message) -> None:
    out = tmp_path / "bad.png"
    with pytest.raises(SystemExit) as exit_:
        traverse(ckpt, out, *dims)
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not out.exists()
