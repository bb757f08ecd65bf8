"""Read checkpoints safely (the methods rebuild themselves from one: ``methods/loading.py``).

Every checkpoint the package reads goes through :func:`read_checkpoint`: ``torch.load`` with
``weights_only=True``, so a file can hold tensors, plain containers and the classes registered
with ``torch.serialization.add_safe_globals`` (backbones, optimizer classes), and nothing that
runs code when it is unpickled.
"""

import errno
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

# How torch's weights-only unpickler names a global it refuses.
_GLOBAL = re.compile(
    r"(?:GLOBAL |unsupported class |unrecognized function |allowlisted via `add_safe_globals`, "
    r"but got )<?(?:class |function )?'?([\w.]+)"
)
# Lines of torch's weights-only message that say nothing about this file.
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation",
                "(1)", "(2)", "In PyTorch 2.6", "Re-running", "WeightsUnpickler error")


class CheckpointError(ValueError):
    """A checkpoint file that genae-lightning will not or cannot read."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that needs a global outside the allowed ones (it could run code)."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that is corrupt or truncated."""


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


def _reason(err: BaseException) -> str:
    """The one line of a loading error that says what is wrong with the file."""
    lines = [line.strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line and not line.startswith(_BOILERPLATE)]
    text = lines[0] if lines else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _is_corruption(err: BaseException) -> bool:
    """Whether a loading error means the bytes of the file are damaged (not, e.g., a device)."""
    if isinstance(err, (EOFError, KeyError, IndexError, UnicodeDecodeError,
                        pickle.UnpicklingError)):
        return True
    if isinstance(err, OSError):
        return err.errno == errno.EINVAL  # a zip whose central directory points past the end
    if isinstance(err, RuntimeError):
        text = str(err)
        return any(s in text for s in ("PytorchStreamReader", "EOF", "corrupt", "zip archive",
                                        "out of bounds for storage", "resize storage",
                                        "setStorage"))
    return False


def refusal(where: str, err: BaseException) -> CheckpointError | None:
    """The clear error for a failed ``torch.load`` of ``where``, or None if it is no file fault.

    A global that the weights-only unpickler refuses gives :class:`UnsafeCheckpointError`
    (naming the global); damaged bytes give :class:`CorruptCheckpointError`.
    """
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and (match := _GLOBAL.search(text)):
        return UnsafeCheckpointError(
            f"genae-lightning refuses to load {where!r}: it needs the global {match.group(1)!r}, "
            "which genae-lightning does not allow (nothing in the file was run); only load "
            "checkpoints written by `genae fit` or a Trainer fitting a genae_lightning method. "
            "See 'Checkpoints are loaded safely' in docs/errors.md"
        )
    if _is_corruption(err):
        return CorruptCheckpointError(
            f"checkpoint {where!r} is corrupt or truncated ({_reason(err)}): it was probably cut "
            "off while being written (full disk, killed job) or damaged in a copy. Resume from "
            "another checkpoint of the run (an earlier epoch=..-step=...ckpt or last.ckpt in its "
            "checkpoints folder), or copy the file again"
        )
    return None


def read_checkpoint(
    path: str | os.PathLike[str] | IO[bytes],
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` and clear errors.

    Args:
        path: The checkpoint file (or an open binary file object).
        map_location: Where to put the tensors, as for ``torch.load`` (``"cpu"`` by default).

    Returns:
        The checkpoint dictionary.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file needs a global that is not allowed (it is never run).
        CorruptCheckpointError: The file is corrupt or truncated.
        CheckpointError: The file holds something else than a checkpoint dictionary.
    """
    if isinstance(path, (str, os.PathLike)):
        where = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {where!r} does not exist")
    else:
        where = str(getattr(path, "name", "<file object>"))
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        clear = refusal(where, err)
        if clear is None:
            raise
        raise clear from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{where!r} is not a checkpoint: it holds a {type(checkpoint).__name__}, not the "
            "dictionary `genae fit` writes"
        )
    check_structure(checkpoint, where)
    return checkpoint


# Entries of a checkpoint and the type each must have when present.
_STRUCTURE: dict[str, type | tuple[type, ...]] = {
    "state_dict": dict, "hyper_parameters": dict, "datamodule_hyper_parameters": dict,
    "genae": dict, "global_step": int, "epoch": int,
}


def check_structure(checkpoint: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint whose known entries have the wrong type (a mapping that is a list)."""
    for key, expected in _STRUCTURE.items():
        value = checkpoint.get(key)
        if value is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            raise CorruptCheckpointError(
                f"checkpoint {where!r}: {key!r} is a {type(value).__name__}, expected a "
                f"{getattr(expected, '__name__', expected)}; the file was edited or damaged: "
                "use a file `genae fit` or save_pretrained wrote")
    for name, tensor in (checkpoint.get("state_dict") or {}).items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CorruptCheckpointError(
                f"checkpoint {where!r}: state_dict entry {name!r} is a "
                f"{type(tensor).__name__}, expected a tensor; the file was edited or damaged")

def plain(value: Any) -> Any:
    """``value`` as plain YAML/JSON data: mappings, lists, numbers, strings (others as ``str``).

    Keys LightningCLI keeps for itself (``config``: the config files; ``__path__``) are left out.
    """
    if hasattr(value, "as_dict"):  # a jsonargparse Namespace
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()
                if str(k) != "config" and not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
