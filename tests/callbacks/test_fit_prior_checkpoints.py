"""FitLatentPrior writes the fitted priors into every checkpoint file the run keeps."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.cli import main
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE

SHAPE = (1, 8, 8)


def fit(tmp_path, max_steps: int = 2, **kwargs) -> L.Trainer:
    torch.manual_seed(0)
    model = AE(image_shape=SHAPE, latent_dim=3, backbone=MLPBackbone(hidden=[16]))
    trainer = L.Trainer(max_steps=max_steps, default_root_dir=tmp_path, accelerator="cpu",
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1, log_every_n_steps=1,
                        **kwargs)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=64,
                                                  batch_size=8))
    return trainer


def priors_in(path) -> list[str]:
    return read_checkpoint(path)["genae"]["posthoc_priors"]


def test_default_checkpoint_gets_the_gmm_and_genae_sample_uses_it(tmp_path) -> None:
    fit(tmp_path, callbacks=[FitLatentPrior(n_components=4)])  # default ModelCheckpoint only
    (ckpt,) = tmp_path.rglob("*.ckpt")
    assert ckpt.name == "epoch=0-step=2.ckpt"
    assert priors_in(ckpt) == ["gaussian", "gmm"]
    assert not list(ckpt.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    out = tmp_path / "s.png"
    main(["sample", "--ckpt_path", str(ckpt), "--prior", "gmm", "--n", "4", "--nrow", "2",
          "--out", str(out)])
    assert Image.open(out).size == (2 * 8 + 3, 2 * 8 + 3)


def test_top_k_files_of_the_final_step_get_them_earlier_ones_are_named(tmp_path) -> None:
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpts", monitor="train/loss",
                                  save_top_k=2, every_n_train_steps=1, save_last=True)
    with pytest.warns(UserWarning, match=r"earlier steps .*step=1\.ckpt' \(step 1\)"):
        trainer = fit(tmp_path, max_steps=2,
                      callbacks=[checkpoints, FitLatentPrior(n_components=4)])
    assert trainer.global_step == 2
    files = {p.name: priors_in(p) for p in (tmp_path / "ckpts").glob("*.ckpt")}
    assert files == {"epoch=0-step=1.ckpt": [], "epoch=0-step=2.ckpt": ["gaussian", "gmm"],
                     "last.ckpt": ["gaussian", "gmm"]}
