"""Load a trained method from a checkpoint without its config."""

import importlib
from pathlib import Path

import torch

from genae_lightning.methods.base import GenerativeAutoencoder


def _compatible_part(version: str) -> tuple[str, ...]:
    """Major version (and minor while 0.x): checkpoints are compatible within it."""
    parts = version.split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


def check_version(saved: str, where: str) -> None:
    """Refuse checkpoints written by an incompatible genae-lightning version."""
    from genae_lightning import __version__

    if _compatible_part(saved) != _compatible_part(__version__):
        raise ValueError(
            f"{where!r} was written by genae-lightning {saved}, which is not compatible with the "
            f"installed {__version__}; install genae-lightning=={saved} to load it"
        )


def load_method(ckpt_path: str | Path, map_location: str = "cpu") -> GenerativeAutoencoder:
    """Rebuild the method saved in ``ckpt_path`` (hyperparameters, weights, fitted priors).

    Checkpoints are pickles: only load files you trust.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    info = checkpoint.get("genae") if isinstance(checkpoint, dict) else None
    if not info or "method" not in info:
        raise ValueError(
            f"{str(path)!r} is not a genae-lightning checkpoint (no 'genae' entry): it must come "
            "from `genae fit` or a Trainer fitting a genae_lightning method"
        )
    check_version(str(info.get("version", "0.0.0")), str(path))
    module_name, _, class_name = info["method"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} was saved by method {info['method']!r} (genae-lightning "
            f"{info.get('version', '?')}), which cannot be imported here: {err}"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, GenerativeAutoencoder)):
        raise ValueError(f"{info['method']!r} in {str(path)!r} is not a GenerativeAutoencoder")
    return cls.load_from_checkpoint(path, map_location=map_location, weights_only=False)


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """The checkpoint dictionary in ``path``, loaded without running any code in it."""
    return torch.load(path, map_location=map_location, weights_only=True)
