"""Load a trained method from a checkpoint without its config (class, hyperparameters, weights)."""

import importlib
from pathlib import Path
from typing import Any

from genae_lightning.checkpoint import check_version, read_checkpoint
from genae_lightning.methods.checkpointing import CheckpointedModule


def method_class(checkpoint: dict[str, Any], where: str) -> type[CheckpointedModule]:
    """The method class recorded in a genae-lightning checkpoint (its version checked)."""
    info = checkpoint.get("genae")
    if not isinstance(info, dict) or "method" not in info:
        raise ValueError(
            f"{where!r} is not a genae-lightning checkpoint (no 'genae' entry): it must come "
            "from `genae fit` or a Trainer fitting a genae_lightning method"
        )
    check_version(str(info.get("version", "0.0.0")), where)
    module_name, _, class_name = str(info["method"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(
            f"checkpoint {where!r} was saved by method {info['method']!r} (genae-lightning "
            f"{info.get('version', '?')}), which cannot be imported here: {err}"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, CheckpointedModule)):
        raise ValueError(f"{info['method']!r} in {where!r} is not a CheckpointedModule")
    return cls


def load_method(ckpt_path: str | Path, map_location: str = "cpu") -> CheckpointedModule:
    """Rebuild the method saved in ``ckpt_path`` (hyperparameters, weights, fitted priors).

    The file is read with :func:`read_checkpoint` (weights only: it cannot run code).
    """
    checkpoint = read_checkpoint(ckpt_path, map_location=map_location)
    return method_from_checkpoint(checkpoint, str(ckpt_path))


def method_from_checkpoint(checkpoint: dict[str, Any], where: str) -> CheckpointedModule:
    """Rebuild the method of a checkpoint already read with :func:`read_checkpoint`."""
    cls = method_class(checkpoint, where)
    return cls.from_checkpoint_dict(checkpoint)
