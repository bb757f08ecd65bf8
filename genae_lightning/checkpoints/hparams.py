"""Hyperparameters read from a file are checked for type and size before a model is built.

A checkpoint or ``config.json`` claiming ``image_shape`` (1, 100000, 100000) or a latent of a
billion dimensions would make the constructor try to allocate terabytes; :func:`check_hparams`
refuses it first, naming the file, the key and the value.
"""

from collections.abc import Mapping
from typing import Any

from genae_lightning.checkpoints.reading import CheckpointError

# Sizes a trained genae model has never come near: (largest value, what it is).
MAX_IMAGE_SIDE = 4096
MAX_CHANNELS = 64
MAX_PIXELS = 2**24  # C * H * W
SIZE_LIMITS: dict[str, int] = {
    "latent_dim": 2**16, "encoder_features": 2**17, "channels": 2**14, "hidden": 2**16,
    "discriminator_hidden": 2**16, "flow_hidden": 2**16, "flow_layers": 256,
    "n_components": 2**14, "num_pseudo_inputs": 2**14, "num_layers": 64, "kernel": 64,
    "chunk_size": 2**20, "max_iter": 10**6, "n_power_iterations": 1000,
}
FLOAT_LIMITS: dict[str, float] = {"width": 64.0}
PLAIN = (type(None), bool, int, float, str)


class InvalidHyperparametersError(CheckpointError):
    """A file's hyperparameters have a wrong type or an impossible size."""


def _refuse(where: str, key: str, value: Any, expected: str) -> InvalidHyperparametersError:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return InvalidHyperparametersError(
        f"{where}: hyperparameter {key} = {text}, expected {expected}; the file was edited or "
        "damaged (genae writes no such value): use a file `genae fit` or save_pretrained wrote")


# Sizes given as a list of layer widths.
LIST_SIZES = frozenset({"hidden", "discriminator_hidden"})


def _check_size(where: str, key: str, value: Any, limit: int) -> None:
    if isinstance(value, str):  # a choice of the same name (InfoVAE's kernel="imq")
        return
    listed = isinstance(value, list | tuple) and key.rpartition(".")[2] in LIST_SIZES
    values = value if listed else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= limit:
            raise _refuse(where, key, value, f"integer sizes between 0 and {limit}")


def check_image_shape_value(where: str, key: str, value: Any) -> None:
    """``image_shape`` must be three positive ints of a sane image."""
    ok = (isinstance(value, list | tuple) and len(value) == 3
          and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in value))
    if not ok or value[0] > MAX_CHANNELS or max(value[1:]) > MAX_IMAGE_SIDE \
            or value[0] * value[1] * value[2] > MAX_PIXELS:
        raise _refuse(where, key, value, f"(channels <= {MAX_CHANNELS}, height, width <= "
                      f"{MAX_IMAGE_SIDE}) as three positive integers, at most {MAX_PIXELS} "
                      "values per image")


def check_hparams(hparams: Mapping[str, Any], where: str, prefix: str = "hyper_parameters") -> None:
    """Refuse hyperparameters of a wrong type or impossible size (nested configs included)."""
    for name, value in hparams.items():
        key = f"{prefix}.{name}"
        if not isinstance(name, str):
            raise _refuse(where, key, name, "string keys")
        if name == "image_shape":
            check_image_shape_value(where, key, value)
        elif name in SIZE_LIMITS and value is not None:
            _check_size(where, key, value, SIZE_LIMITS[name])
        elif name in FLOAT_LIMITS and value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not 0 < value <= FLOAT_LIMITS[name]:
                raise _refuse(where, key, value, f"a number in (0, {FLOAT_LIMITS[name]:g}]")
        elif isinstance(value, Mapping):
            check_hparams(value, where, key)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    check_hparams(item, where, f"{key}[{i}]")
