"""genae-lightning: generative autoencoders in PyTorch Lightning.

Every method, backbone, DataModule, callback and the prior and constraint objects the methods
take are importable from here: ``from genae_lightning import InjFlow, ConvBackbone, MNIST,
FitLatentPrior``. They are loaded on first use (PEP 562), so ``import genae_lightning`` and
``genae_lightning.__version__`` stay cheap (no torch).

The methods are not listed here: every public class of ``genae_lightning/methods/*.py`` is one
(``genae_lightning.methods`` discovers them), and their names are read from those files with
``ast`` when first asked for (``__all__``, ``dir()`` or the name itself), importing nothing.
"""

import importlib
from typing import Any

__version__ = "0.2.0"

METHODS_PACKAGE = "genae_lightning.methods"

# public name -> the submodule that defines it (the method classes: see _method_names)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["GenerativeAutoencoder", "LossOutput", "AugmentedLagrangian", "Constraint", "Penalty",
         "load_method"],
        METHODS_PACKAGE),
    **dict.fromkeys(["Backbone", "ConvBackbone", "DCGANBackbone", "MLPBackbone"],
                    "genae_lightning.backbones"),
    **dict.fromkeys(
        ["CIFAR10", "CIFAR10Sub", "CelebA", "Coil20", "Digits", "FashionMNIST",
         "ImageDataModule", "MNIST", "Moons", "SVHN", "SyntheticImages"],
        "genae_lightning.data"),
    **dict.fromkeys(
        ["CompileModules", "FitLatentPrior", "GenerativeMetrics", "GracefulInterrupt",
         "ImageLogger", "InjFlowDiagnostics", "NonFiniteGuard"],
        "genae_lightning.callbacks"),
    **dict.fromkeys(
        ["DecoupledPrior", "FullCovGaussian", "GaussianMixture", "Prior", "StandardNormal"],
        "genae_lightning.priors"),
    "SafeCheckpointIO": "genae_lightning.checkpoints.io",
    "from_pretrained": "genae_lightning.checkpoints.pretrained",
    "save_pretrained": "genae_lightning.checkpoints.pretrained",
}
_method_names_read: list[str] | None = None


def _method_names() -> list[str]:
    """The method classes' names: the public classes ``genae_lightning/methods/*.py`` define.

    Read with ``ast``, so nothing is imported; tests/test_public_api.py checks that they are the
    classes ``genae_lightning.methods`` discovers.
    """
    global _method_names_read
    if _method_names_read is None:
        import ast
        from pathlib import Path

        names = []
        for path in sorted((Path(__file__).parent / "methods").glob("*.py")):
            if not path.name.startswith("_"):
                tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
                names += [node.name for node in tree.body
                          if isinstance(node, ast.ClassDef) and not node.name.startswith("_")]
        _method_names_read = sorted(names)
    return _method_names_read


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access (PEP 562); build ``__all__``."""
    if name == "__all__":
        value: Any = ["__version__", *sorted({*_EXPORTS, *_method_names()})]
    else:
        module = _EXPORTS.get(name) or (METHODS_PACKAGE if name in _method_names() else None)
        if module is None:
            raise AttributeError(f"module 'genae_lightning' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    """The module's names and the lazily imported public ones."""
    public = globals().get("__all__") or __getattr__("__all__")
    return sorted({*globals(), *public})
