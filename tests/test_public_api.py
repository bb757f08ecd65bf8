"""The top-level API: every public name imports from ``genae_lightning``, lazily."""

import subprocess
import sys

import pytest

import genae_lightning
from tests.conftest import REPO


def test_every_public_name_imports_from_the_top_level() -> None:
    for name in genae_lightning.__all__:
        assert getattr(genae_lightning, name) is not None, name
    from genae_lightning import MNIST, AugmentedLagrangian, ConvBackbone, FitLatentPrior, InjFlow
    from genae_lightning.callbacks import FitLatentPrior as FromCallbacks
    from genae_lightning.methods import InjFlow as FromMethods

    assert FitLatentPrior is FromCallbacks and InjFlow is FromMethods
    assert {"AE", "VAE", "DecoupledPrior", "Penalty", "StandardNormal"} <= set(dir(genae_lightning))
    assert MNIST and ConvBackbone and AugmentedLagrangian


def test_every_method_backbone_datamodule_and_callback_is_exported() -> None:
    import genae_lightning.backbones as backbones
    import genae_lightning.callbacks as callbacks
    import genae_lightning.data as data
    import genae_lightning.methods as methods

    classes = {name for module in (methods, backbones, data, callbacks)
               for name in module.__all__ if isinstance(getattr(module, name), type)}
    assert classes <= set(genae_lightning.__all__), sorted(classes - set(genae_lightning.__all__))


def test_the_method_names_read_without_import_are_the_discovered_methods() -> None:
    """`genae_lightning` names the methods from the source (ast); the package imports them.

    Every public class a module of genae_lightning/methods/ defines is a method: a helper class
    goes to genae_lightning/autoencoder/ (or gets a leading underscore).
    """
    import genae_lightning.methods as methods

    assert genae_lightning._method_names() == sorted(methods.METHODS)
    assert set(methods.METHODS) <= set(methods.__all__) and "InjFlow" in methods.METHODS
    for name, cls in methods.METHODS.items():
        assert getattr(genae_lightning, name) is cls is getattr(methods, name)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'InjFlo'"):
        genae_lightning.InjFlo  # noqa: B018


def test_import_alone_does_not_import_torch() -> None:
    code = ("import sys, genae_lightning; print(genae_lightning.__version__); "
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == genae_lightning.__version__
    assert out[1] == "False False"
    # nor do the names that are read, not imported: the methods' (from their source) and dir()
    code = ("import sys, genae_lightning; names = genae_lightning.__all__; dir(genae_lightning); "
            "print('InjFlow' in names, 'torch' in sys.modules, 'lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "False", "False"]
