"""Choices a method takes as objects (its prior, its constraint), saved as plain settings.

A method's ``prior=DecoupledPrior(...)`` or ``constraint=Penalty(...)`` is an ``nn.Module`` with
weights or buffers. Its hyperparameter is stored as the object's ``choice_config``, the
``{"class_path", "init_args"}`` mapping that LightningCLI writes too, so checkpoints hold plain
values (loadable weights-only) and the module's state travels in the state dict.
"""

import importlib
import inspect
import sys
import warnings
from types import FrameType
from typing import Any

from torch import nn


class InjectedChoices:
    """Mixin for a LightningModule whose ``injected_choices`` arguments are module objects.

    Put it first in the bases. ``injected_choices`` maps each argument name to the base class its
    objects must derive from; :meth:`from_checkpoint_dict` rebuilds them from their config.
    """

    injected_choices: dict[str, type[nn.Module]] = {}

    def save_hyperparameters(self, *args: Any, ignore: Any = None,
                             frame: FrameType | None = None, logger: bool = True) -> None:
        """Lightning's ``save_hyperparameters``, with each injected object saved as its config."""
        frame = frame or inspect.currentframe().f_back  # type: ignore[union-attr]
        names = "|".join(self.injected_choices)
        with warnings.catch_warnings():  # stored as their config below, not as modules
            warnings.filterwarnings("ignore", f"Attribute '({names})' is an instance of `nn")
            super().save_hyperparameters(*args, ignore=ignore, frame=frame,  # type: ignore[misc]
                                         logger=logger)
        for name in self.injected_choices:
            value = self._hparams.get(name)  # type: ignore[attr-defined]
            if isinstance(value, nn.Module):
                self._hparams[name] = choice_config(value)  # type: ignore[attr-defined]
                self._hparams_initial[name] = choice_config(value)  # type: ignore[attr-defined]

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], strict: bool | None = None,
                             **kwargs: Any) -> Any:
        """Rebuild the injected objects from their saved config, then build the method."""
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        if "_instantiator" not in hparams:  # LightningCLI's instantiator rebuilds them itself
            for name, base in cls.injected_choices.items():
                if name not in kwargs and isinstance(hparams.get(name), dict):
                    hparams[name] = build_choice(hparams[name], base, name)
        checkpoint = {**checkpoint, "hyper_parameters": hparams}
        return super().from_checkpoint_dict(checkpoint, strict=strict,  # type: ignore[misc]
                                            **kwargs)


def choice_config(obj: nn.Module) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of an injected object (its ``init_args()``)."""
    cls = type(obj)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
            "init_args": obj.init_args()}  # type: ignore[operator]


def build_choice(config: dict[str, Any], base: type[nn.Module], name: str) -> nn.Module:
    """The object a saved ``{"class_path", "init_args"}`` describes, a subclass of ``base``.

    Only classes of modules already imported are considered (a checkpoint cannot import code).
    """
    path = str(config.get("class_path", ""))
    module_name, _, class_name = path.rpartition(".")
    module = sys.modules.get(module_name) if module_name else None
    cls = getattr(module, class_name, None) if module is not None else None
    if cls is None and module_name.startswith("genae_lightning."):
        cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(
            f"the checkpoint's {name} is {path!r}, which is not a {base.__name__} class of an "
            f"imported module; expected e.g. genae_lightning.{base.__module__.split('.')[1]}."
            f"<{base.__name__} subclass>. Import the module that defines it before loading"
        )
    return cls(**dict(config.get("init_args") or {}))
