"""genae-lightning: generative autoencoders in PyTorch Lightning.

Every method, backbone, DataModule, callback and the prior and constraint objects the methods
take are importable from here: ``from genae_lightning import InjFlow, ConvBackbone, MNIST,
FitLatentPrior``. They are loaded on first use (PEP 562), so ``import genae_lightning`` and
``genae_lightning.__version__`` stay cheap (no torch).
"""

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["AE", "AEL2", "AESN", "CAE", "BetaTCVAE", "BetaVAEB", "BetaVAEH", "FactorVAE",
         "GenerativeAutoencoder", "InfoVAE", "InjFlow", "LPGA", "LossOutput", "RAE", "SWAE",
         "VAE", "VPGA", "VampPrior", "WAEGAN", "WAEMMD", "AugmentedLagrangian", "Constraint",
         "Penalty"],
        "genae_lightning.methods"),
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
    "load_method": "genae_lightning.methods",
    "from_pretrained": "genae_lightning.checkpoints.pretrained",
    "save_pretrained": "genae_lightning.checkpoints.pretrained",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genae_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    """The module's names and the lazily imported public ones."""
    return sorted({*globals(), *__all__})

