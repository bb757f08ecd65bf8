"""Load a trained method from a checkpoint without its config."""

import importlib
from pathlib import Path

import torch

from genae_lightning.methods.base import GenerativeAutoencoder


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
