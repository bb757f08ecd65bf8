"""Choices a method takes as objects (its prior, its constraint), saved as plain settings.

A method's ``prior=DecoupledPrior(...)`` or ``constraint=Penalty(...)`` is an ``nn.Module`` with
weights or buffers. Its hyperparameter is stored as the object's ``choice_config``, the
``{"class_path", "init_args"}`` mapping that LightningCLI writes too, so checkpoints hold plain
values (loadable weights-only) and the module's state travels in the state dict.
"""

import inspect
import warnings
from types import FrameType
from typing import Any

from torch import nn


class InjectedChoices:
    """Mixin for a LightningModule whose ``injected_choices`` arguments are module objects.

    Put it first in the bases. ``injected_choices`` maps each argument name to the base class its
    objects must derive from; ``from_checkpoint_dict`` rebuilds them from their config (through
    the allow-list of :mod:`genae_lightning.trust`) and checks that base.
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


def choice_config(obj: nn.Module) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of an injected object (its ``init_args()``)."""
    cls = type(obj)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
            "init_args": obj.init_args()}  # type: ignore[operator]
