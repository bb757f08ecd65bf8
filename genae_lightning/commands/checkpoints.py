"""What every command that reads a trained model shares: its checkpoint, its data, a device.

A ``genae fit`` run keeps ``<log dir>/config.yaml`` beside ``<log dir>/checkpoints/*.ckpt``;
:func:`parse_checkpoint_and_data` reads ``--ckpt_path`` first and takes the run's saved ``data``
section as the default of ``--data`` (``--data.<arg>`` alone then overrides single arguments,
e.g. ``root``), and :func:`load_checkpoint` reads the file once into the method and its step.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser, Namespace

import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.commands.config_files import read_yaml
from genae_lightning.data import ImageDataModule
from genae_lightning.methods import GenerativeAutoencoder, method_from_checkpoint
from genae_lightning.trust import check_names

DEVICES = "cpu, cuda, cuda:N (N: a GPU index), mps, or auto (a GPU when there is one)"


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``; other names checked.

    Raises:
        ValueError: ``device`` is none of :data:`DEVICES`, or names a GPU this machine lacks.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    match = re.fullmatch(r"cpu|mps|cuda(?::(\d+))?", device)
    if match is None:
        raise ValueError(f"--device {device!r} is not a device: expected {DEVICES}")
    if device.startswith("cuda") and int(match.group(1) or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {device!r}: this machine has {torch.cuda.device_count()} "
                         "CUDA GPU(s); use --device cpu, or auto to take a GPU when there is one")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device 'mps': MPS (Apple GPU) is not available on this machine; use "
                         "--device cpu, or auto to take a GPU when there is one")
    return device


def missing_checkpoint(path: str | Path) -> str:
    """What to say when ``--ckpt_path`` names no file."""
    return (f"checkpoint {str(path)!r} does not exist: pass the .ckpt file a `genae fit` run "
            "wrote (under <log dir>/checkpoints/)")


def checkpoint_file(path: str | Path) -> Path:
    """``--ckpt_path`` as an existing file.

    Raises:
        IsADirectoryError: It is a folder; the message points at the newest ``last.ckpt`` in it.
        FileNotFoundError: It does not exist, or is empty text.
    """
    if path == "":  # Path("") would be the working directory
        raise FileNotFoundError("--ckpt_path is empty: pass the .ckpt file a `genae fit` run "
                                "wrote (under <log dir>/checkpoints/)")
    path = Path(path)
    if path.is_dir():
        found = [p for pattern in ("last.ckpt", "checkpoints/last.ckpt",
                                   "*/checkpoints/last.ckpt", "*/*/checkpoints/last.ckpt")
                 for p in path.glob(pattern) if p.is_file()]
        hint = (f"; did you mean {max(found, key=lambda p: p.stat().st_mtime)} (its newest "
                "last.ckpt)?" if found else "")
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a checkpoint: --ckpt_path takes "
                                f"the .ckpt file a `genae fit` run wrote{hint}")
    if not path.is_file():
        raise FileNotFoundError(missing_checkpoint(path))
    return path


@dataclass
class Loaded:
    """A method rebuilt from its checkpoint.

    Attributes:
        path: The checkpoint file.
        model: The method (hyperparameters, weights, fitted post-hoc priors).
        global_step: The optimizer steps it had taken (None when not recorded).
    """

    path: Path
    model: GenerativeAutoencoder
    global_step: int | None


def load_checkpoint(ckpt_path: str | Path, device: str = "cpu") -> Loaded:
    """Read a checkpoint once (weights only) and rebuild its method on ``device``."""
    path = checkpoint_file(ckpt_path)
    checkpoint = read_checkpoint(path, map_location=resolve_device(device))
    model = method_from_checkpoint(checkpoint, str(path))
    return Loaded(path, model, checkpoint.get("global_step"))


def run_config(ckpt_path: Path) -> Path | None:
    """The ``config.yaml`` LightningCLI saved for the run of a checkpoint, if any.

    Looked for beside the checkpoint and one folder up (``<log dir>/checkpoints/last.ckpt``).
    """
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def saved_data(ckpt_path: Path) -> dict[str, Any] | None:
    """The ``data`` section (class_path, init_args) of the run's saved config, if any."""
    config = run_config(ckpt_path)
    if config is None:
        return None
    saved = read_yaml(config)
    if not isinstance(saved, dict):
        raise ValueError(f"{config}: the run's config holds a YAML {type(saved).__name__}, "
                         "expected the mapping `genae fit` saves (trainer:, model:, data:); "
                         "pass the data yourself, e.g. --data MNIST")
    data = saved.get("data")
    data = check_names({"data": data}, where=str(config), key="", kinds=("data",))["data"]
    if isinstance(data, str):  # `data: MNIST`, now checked and written in full
        data = {"class_path": data}
    return data if isinstance(data, dict) and "class_path" in data else None


def ckpt_argument(argv: list[str]) -> str | None:
    """``--ckpt_path`` from argv before the full parse (it decides the data defaults)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
        if arg == "--ckpt_path" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def add_checkpoint_and_data(parser: ArgumentParser, what: str) -> None:
    """``--ckpt_path`` (required), ``--data`` (default: the run's saved data) and ``--device``."""
    parser.add_argument("--ckpt_path", type=str, required=True, help=f"checkpoint to {what}")
    parser.add_subclass_arguments(ImageDataModule, "data", required=False,
                                  help="its data (default: the run's saved config.yaml)")
    parser.add_argument("--device", type=str, default="auto",
                        help="torch device, e.g. cpu or cuda; auto: a GPU when there is one")


def parse_checkpoint_and_data(
    parser: ArgumentParser, argv: list[str]
) -> tuple[Namespace, ImageDataModule]:
    """Parse argv with the run's saved data as default; returns the config and the DataModule.

    The checkpoint is checked before the data, so a wrong path is named as such.

    Raises:
        FileNotFoundError: If ``--ckpt_path`` names no file.
        IsADirectoryError: If ``--ckpt_path`` names a folder.
    """
    given = ckpt_argument(argv)
    if given is not None:
        checkpoint_file(given)
        data_default = saved_data(Path(given))
        if data_default is not None:
            parser.set_defaults(data=data_default)
    cfg = parser.parse_args(argv)
    try:
        cfg.device = resolve_device(cfg.device)
    except ValueError as err:
        parser.error(str(err))
    ckpt = Path(cfg.ckpt_path)
    if cfg.data is None:
        parser.error(
            f"cannot tell which data {str(ckpt)!r} was trained on: no --data was given and no "
            f"config.yaml was found in {str(ckpt.parent)!r} or {str(ckpt.parent.parent)!r} "
            "(`genae fit` saves it in the run's log dir). Pass the data, e.g. "
            "--data MNIST --data.root data"
        )
    return cfg, parser.instantiate(cfg).data
