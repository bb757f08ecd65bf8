"""Every YAML in configs/ composes, parses with LightningCLI and builds its model and data; a set
of them that uses every part (configs/model/, configs/data/, configs/trainer/) trains 2 steps
through `genae fit` on tiny synthetic data of its shape.

Training all 88 configs took most of the suite's time while repeating the same parts: a config
is a trainer part, a data part and a model part plus a few settings. So each part is trained
once, in the config :func:`trained_configs` picks for it, and every config is checked up to the
first step: composed, parsed by `genae fit`'s parser, its model (small networks) and its own
DataModule built, one reconstruction and sample of the data's shape. A new part is trained as
soon as a config uses it, with no list to edit.
"""

import sys
from functools import cache
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.cli import main
from genae_lightning.commands.config_files import compose, expand_config_args, read_yaml
from genae_lightning.commands.fit import GenaeCLI
from genae_lightning.data import ImageDataModule
from genae_lightning.methods import GenerativeAutoencoder, load_method
from genae_lightning.trust import lookup
from tests.conftest import REPO

CONFIG_DIR = REPO / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
PART_FOLDERS = ("trainer", "data", "model")  # what a config's `defaults:` combine


def _data_class(class_path: str) -> type:
    """The DataModule class a config names, looked up in genae's allow-list (nothing imported)."""
    return lookup(class_path, ["data"], where="a bundled config", key="data.class_path")


@cache
def parts(config: Path) -> frozenset[str]:
    """The part files a config is composed of, nested parts included (``model/vae.yaml``)."""
    raw = read_yaml(config)
    found: set[str] = set()
    for part in raw.get("defaults", []) if isinstance(raw, dict) else []:
        path = (config.parent / part).resolve()
        found |= {path.relative_to(CONFIG_DIR).as_posix()} | parts(path)
    return frozenset(found)


def all_parts() -> set[str]:
    return {p.relative_to(CONFIG_DIR).as_posix() for folder in PART_FOLDERS
            for p in (CONFIG_DIR / folder).glob("*.yaml")}


def image_shape(cfg: dict) -> tuple[int, int, int]:
    """The image shape of a composed config's data (its DataModule is built, not loaded)."""
    data = cfg["data"]
    return tuple(_data_class(data["class_path"])(**data.get("init_args", {})).image_shape)


@cache
def _pixels(config: Path) -> int:
    return int(torch.tensor(image_shape(compose(config))).prod())


def trained_configs() -> list[Path]:
    """Configs that together use every part; configs without parts are trained themselves.

    Greedy: for each part not yet trained, the config that trains most untrained parts, the one
    with the smallest images among those (then by name). 88 configs -> about 30 runs.
    """
    chosen = [c for c in CONFIGS if not parts(c)]
    covered: set[str] = set()
    for part in sorted(set().union(*map(parts, CONFIGS))):
        if part in covered:
            continue
        best = min((c for c in CONFIGS if part in parts(c)),
                   key=lambda c: (-len(parts(c) - covered), _pixels(c), c.name))
        chosen.append(best)
        covered |= parts(best)
    return sorted(chosen)


TRAINED = trained_configs()


def tiny_config(config: Path, tmp_path: Path) -> dict:
    """The composed config with small networks, short grids and CSV logs under ``tmp_path``."""
    cfg = compose(config)
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
        if callback.get("class_path", "").endswith("ImageLogger"):
            callback.setdefault("init_args", {})["n"] = 8
    backbone = cfg["model"]["init_args"].get("backbone", {})
    if backbone.get("class_path", "").endswith("ConvBackbone"):
        backbone.setdefault("init_args", {})["width"] = 0.0625
    model_args = cfg["model"]["init_args"]
    if "num_pseudo_inputs" in model_args:  # drawn from the ~22 training samples, without repeats
        model_args["num_pseudo_inputs"] = min(model_args["num_pseudo_inputs"], 8)
    return cfg


def smoke_config(config: Path, tmp_path: Path) -> dict:
    """The tiny config with its data swapped for SyntheticImages of the data's image shape."""
    cfg = tiny_config(config, tmp_path)
    cfg["data"] = {
        "class_path": "genae_lightning.data.SyntheticImages",
        "init_args": {
            "image_shape": list(image_shape(cfg)),
            "num_samples": 24,
            "batch_size": 4,
        },
    }
    return cfg


def test_there_are_configs() -> None:
    names = {c.stem for c in CONFIGS}
    assert {"quickstart", "injflow_mnist", "injflow_ln_mnist", "ae_mnist", "vae_mnist"} <= names


def test_the_trained_configs_train_every_part() -> None:
    """Every part file is used by a config that trains, and so is every config without parts."""
    trained = set().union(*map(parts, TRAINED))
    untrained = sorted(all_parts() - trained)
    assert not untrained, f"parts no trained config uses (add a config that uses them): " \
                          f"{untrained}"
    assert {"model/injflow.yaml", "data/mnist.yaml", "trainer/paper.yaml"} <= trained
    assert [c for c in CONFIGS if not parts(c)] == [c for c in TRAINED if not parts(c)]
    assert len(TRAINED) < len(CONFIGS) / 2  # the point of choosing: far fewer runs


@pytest.mark.parametrize("config", TRAINED, ids=lambda c: c.stem)
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


@pytest.fixture(scope="session")
def fit_parser(tmp_path_factory):
    """`genae fit`'s LightningCLI parser, built once (building it takes most of a parse)."""
    tmp = tmp_path_factory.mktemp("parser")
    path = tmp / "quickstart.yaml"
    path.write_text(yaml.safe_dump(tiny_config(CONFIG_DIR / "quickstart.yaml", tmp)))
    with pytest.MonkeyPatch.context() as patch:  # pytest's own arguments are not the CLI's
        patch.setattr(sys, "argv", ["genae"])
        cli = GenaeCLI(GenerativeAutoencoder, ImageDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, run=False, args=["--config", str(path)])
    return cli.parser


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_config_parses_and_builds_its_model_and_data(config, fit_parser, tmp_path) -> None:
    """Composed as `genae fit` composes it, the config itself parses; its model (small
    networks) and its own DataModule are built, and the model takes the data's images."""
    fit_parser.parse_args(expand_config_args(["--config", str(config)]))
    path = tmp_path / config.name
    path.write_text(yaml.safe_dump(tiny_config(config, tmp_path)))
    built = fit_parser.instantiate_classes(fit_parser.parse_args(["--config", str(path)]))
    model, data = built.model, built.data
    assert isinstance(model, GenerativeAutoencoder) and isinstance(data, ImageDataModule)
    assert type(data).__name__ == compose(config)["data"]["class_path"].rpartition(".")[2]
    assert tuple(model.image_shape) == data.image_shape == image_shape(compose(config))
    x = torch.rand(2, *data.image_shape)
    with torch.no_grad():
        assert model.reconstruct(x).shape == x.shape
        assert model.sample(2).shape == x.shape
