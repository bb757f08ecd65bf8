"""Methods: one LightningModule per generative autoencoder, all on the shared backbones.

The package is its own registry: every module in it is a method's, and importing the package
imports each module and exports every public class defined there that is a
:class:`~genae_lightning.autoencoder.base.GenerativeAutoencoder` subclass. A new method is its
module only: ``from genae_lightning.methods import DAE``, ``--model DAE`` and
``class_path: genae_lightning.methods.DAE`` find ``methods/dae.py``'s ``DAE`` with no list
edited. :data:`METHODS` maps each method's name to its class. The package also re-exports what
a user of the methods needs (``GenerativeAutoencoder``, ``LossOutput``, the constraints,
``load_method``), so ``from genae_lightning.methods import ...`` is the one import.
"""

import importlib
import inspect
import pkgutil

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.autoencoder.constraints import AugmentedLagrangian, Constraint, Penalty
from genae_lightning.checkpoints.loading import load_method, method_from_checkpoint


def _discover() -> dict[str, type[GenerativeAutoencoder]]:
    """Import every module of this package; its public method classes, by name, sorted.

    Raises:
        ImportError: Two modules define a method class of the same name.
    """
    found: dict[str, type[GenerativeAutoencoder]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, obj in vars(module).items():
            if (name.startswith("_") or not inspect.isclass(obj)
                    or obj.__module__ != module.__name__
                    or not issubclass(obj, GenerativeAutoencoder) or inspect.isabstract(obj)):
                continue
            if name in found:
                raise ImportError(f"two method classes named {name!r}: "
                                  f"{found[name].__module__}.{name} and {module.__name__}.{name}"
                                  "; rename one (methods are found by name)")
            found[name] = obj
    return dict(sorted(found.items()))


METHODS: dict[str, type[GenerativeAutoencoder]] = _discover()
"""Every method class of the package, by name (the registry ``__all__`` is built from)."""

globals().update(METHODS)

__all__ = [
    *METHODS,
    "AugmentedLagrangian",
    "Constraint",
    "GenerativeAutoencoder",
    "LossOutput",
    "Penalty",
    "load_method",
    "method_from_checkpoint",
]
