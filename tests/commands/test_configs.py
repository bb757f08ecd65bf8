"""Every YAML in configs/ trains 2 steps through `genae fit` on tiny synthetic data of its shape."""

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.cli import main
from genae_lightning.commands.config_files import compose
from genae_lightning.methods import load_method
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def smoke_config(config: Path, tmp_path: Path) -> dict:
    """The config with its data swapped for SyntheticImages and everything made tiny."""
    cfg = compose(config)
    data_cls = _import(cfg["data"]["class_path"])
    cfg["data"] = {
        "class_path": "genae_lightning.data.SyntheticImages",
        "init_args": {
            "image_shape": list(data_cls.IMAGE_SHAPE),
            "num_samples": 24,
            "batch_size": 4,
        },
    }
    trainer = cfg.setdefault("trainer", {})
    trainer.update(
        max_steps=2,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.pop("val_check_interval", None)
    trainer.pop("check_val_every_n_epoch", None)
    # local CSV logs only: W&B runs are covered by their own offline test, and starting one per
    # config would dominate this test's time
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path)},
    }
    for callback in trainer.get("callbacks") or []:
        if callback.get("class_path", "").endswith("GenerativeMetrics"):
            callback.setdefault("init_args", {})["num_samples"] = 16
    backbone = cfg["model"]["init_args"].get("backbone", {})
    if backbone.get("class_path", "").endswith("ConvBackbone"):
        backbone.setdefault("init_args", {})["width"] = 0.0625
    model_args = cfg["model"]["init_args"]
    if "num_pseudo_inputs" in model_args:  # drawn from the ~22 training samples, without repeats
        model_args["num_pseudo_inputs"] = min(model_args["num_pseudo_inputs"], 8)
    return cfg


def test_there_are_configs() -> None:
    names = {c.stem for c in CONFIGS}
    assert {"quickstart", "injflow_mnist", "injflow_ln_mnist", "ae_mnist", "vae_mnist"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_config_trains_two_steps(config, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / config.name
    path.write_text(yaml.safe_dump(smoke_config(config, tmp_path)))
    main(["fit", "--config", str(path)])
    ckpts = sorted(tmp_path.rglob("last.ckpt")) or sorted(tmp_path.rglob("*.ckpt"))
    if (
        ckpts
    ):  # configs with a ModelCheckpoint: the checkpoint reloads through genae sample's loader
        model = load_method(ckpts[0])
        assert model.sample(2).shape[1:] == model.image_shape
        assert torch.isfinite(model.sample(2)).all()
