"""Load a trained method from a checkpoint without its config (class, hyperparameters, weights)."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genae_lightning.checkpoints.module import CheckpointedModule
from genae_lightning.checkpoints.reading import check_version, read_checkpoint
from genae_lightning.trust import lookup


def method_class(checkpoint: dict[str, Any], where: str,
                 trusted: Iterable[type] = ()) -> type[CheckpointedModule]:
    """The method class recorded in a genae-lightning checkpoint (its version checked).

    The recorded name is looked up in the allow-list (:mod:`genae_lightning.trust`): a
    genae-lightning method, or one of your classes in ``trusted``; nothing is imported.
    """
    info = checkpoint.get("genae")
    if not isinstance(info, dict) or "method" not in info:
        raise ValueError(
            f"{where!r} is not a genae-lightning checkpoint (no 'genae' entry): it must come "
            "from `genae fit` or a Trainer fitting a genae_lightning method"
        )
    check_version(str(info.get("version", "0.0.0")), where)
    return lookup(info["method"], ("method",), where=where, key="genae.method",
                  trusted=trusted)


def load_method(ckpt_path: str | Path, map_location: str = "cpu",
                trusted: Iterable[type] = ()) -> CheckpointedModule:
    """Rebuild the method saved in ``ckpt_path`` (hyperparameters, weights, fitted priors).

    The file is read with :func:`read_checkpoint` (weights only: it cannot run code), and every
    class it names is looked up in the allow-list (:mod:`genae_lightning.trust`).

    Args:
        ckpt_path: The checkpoint file.
        map_location: Where to put the weights.
        trusted: Your own classes the file may name (your method subclass, backbone, prior).
    """
    checkpoint = read_checkpoint(ckpt_path, map_location=map_location)
    return method_from_checkpoint(checkpoint, str(ckpt_path), trusted=trusted)


def method_from_checkpoint(checkpoint: dict[str, Any], where: str,
                           trusted: Iterable[type] = (), **kwargs: Any) -> CheckpointedModule:
    """Rebuild the method of a checkpoint already read with :func:`read_checkpoint`.

    ``kwargs`` go to ``from_checkpoint_dict`` (e.g. your own ``encoder=`` and ``decoder=``).
    """
    trusted = tuple(trusted)
    cls = method_class(checkpoint, where, trusted)
    return cls.from_checkpoint_dict(checkpoint, where=where, trusted=trusted, **kwargs)
