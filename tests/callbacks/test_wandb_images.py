"""The grids that W&B and TensorBoard store have the pixels of the local PNG files.

A real offline W&B run and a real TensorBoard event file, written by ImageLogger in a tiny fit,
read back from disk: W&B once stored every sample grid black (a float tensor in [0, 1] cast
straight to bytes).
"""

import io
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior, ImageLogger
from genae_lightning.data import Digits
from genae_lightning.loggers import GenaeWandbLogger
from genae_lightning.methods import AE
from tests.commands.test_evaluate_wandb import wait_for_the_whole_run
from tests.conftest import tiny_trainer

GRIDS = ("recon", "samples_standard", "samples_gmm")


def pixels(source: Path | bytes) -> np.ndarray:
    """An image file's (or PNG bytes') pixels as an RGB array."""
    image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    return np.asarray(image.convert("RGB"))


def fit_with_images(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A 2-step AE fit logging its grids to W&B (offline) and TensorBoard.

    Returns:
        The folder of the local PNG grids, and the W&B run file.
    """
    monkeypatch.setenv("WANDB_MODE", "offline")
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[16]))
    loggers = [GenaeWandbLogger(project="test", save_dir=str(tmp_path)),
               TensorBoardLogger(tmp_path / "tb", name="", version=0)]
    grids = tmp_path / "grids"
    callbacks = [FitLatentPrior(n_components=2), ImageLogger(n=8, nrow=4, save_dir=str(grids))]
    trainer = tiny_trainer(tmp_path, logger=loggers, callbacks=callbacks)
    trainer.fit(model, datamodule=Digits(batch_size=16))
    run_file = next(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    wait_for_the_whole_run(run_file)
    return grids, run_file


def test_wandb_and_tensorboard_store_the_pixels_of_the_local_grids(tmp_path, monkeypatch) -> None:
    grids, run_file = fit_with_images(tmp_path, monkeypatch)
    media = run_file.parent / "files" / "media" / "images" / "images"
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    for name in GRIDS:
        local = pixels(grids / f"{name}.png")
        if name.startswith("samples"):
            assert local.max() > 0, f"the local {name} grid is black"
        (stored,) = media.glob(f"{name}_*.png")  # one grid per key (at the end of fit)
        np.testing.assert_array_equal(pixels(stored), local, err_msg=f"W&B {name}")
        (event,) = events.Images(f"images/{name}")
        np.testing.assert_array_equal(pixels(event.encoded_image_string), local,
                                      err_msg=f"TensorBoard {name}")
