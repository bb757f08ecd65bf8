"""The shared constructor arguments are described once (autoencoder/docstrings.py) and shown by
every method: its ``__doc__`` (``help``, the docs site) and ``genae fit --model.help``."""

import ast
import inspect
import re

import docstring_parser
import pytest

import genae_lightning.methods as methods
from genae_lightning import trust
from genae_lightning.autoencoder.base import GenerativeAutoencoder
from genae_lightning.autoencoder.docstrings import (
    SHARED_ARGS,
    init_parameters,
    with_shared_args,
)
from genae_lightning.cli import main
from tests.conftest import REPO

# every class a file may name as a method (trust's allow-list) that has a constructor of its
# own: the methods and their base
CLASSES = sorted((cls for cls in trust.allowed(["method"])
                  if issubclass(cls, GenerativeAutoencoder) and "__init__" in vars(cls)),
                 key=lambda cls: cls.__name__)
PACKAGE_FILES = sorted((REPO / "genae_lightning").rglob("*.py"))


def _args(doc: str | None) -> dict[str, str]:
    """Args name -> description (whitespace collapsed) of a Google-style docstring."""
    parsed = docstring_parser.parse(doc or "", style=docstring_parser.DocstringStyle.GOOGLE)
    return {p.arg_name: " ".join((p.description or "").split()) for p in parsed.params}


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_registry_finds_every_exported_method() -> None:
    exported = {obj for name in methods.__all__
                if inspect.isclass(obj := getattr(methods, name))
                and issubclass(obj, GenerativeAutoencoder)}
    assert exported <= set(CLASSES)
    assert {"AE", "InjFlow", "VAE", "FactorVAE", "GenerativeAutoencoder"} <= {
        cls.__name__ for cls in CLASSES}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_docstring_documents_every_init_parameter(cls) -> None:
    documented = _args(cls.__doc__)
    params = init_parameters(cls)
    assert set(params) <= set(documented), set(params) - set(documented)
    for name in set(params) & set(SHARED_ARGS):
        assert documented[name], name
    # help() shows the same text
    assert inspect.getdoc(cls) == cls.__doc__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_a_shared_argument_the_source_does_not_describe_gets_the_shared_text(cls) -> None:
    own = _args(ast.get_docstring(_class_node(cls)))
    documented = _args(cls.__doc__)
    for name in init_parameters(cls):
        if name in SHARED_ARGS:
            want = own.get(name, _words(SHARED_ARGS[name]))  # the method's own line wins
            assert documented[name] == want, name


def _class_node(cls: type) -> ast.ClassDef:
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    return next(node for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef) and node.name == cls.__name__)


@pytest.mark.parametrize("sentence", [
    "linked from the DataModule by the CLI",  # image_shape
    "Dimension d of the latent space",  # latent_dim
    "Your own decoder module",  # decoder
])
def test_a_shared_sentence_is_written_once_in_the_package(sentence) -> None:
    found = [path.relative_to(REPO) for path in PACKAGE_FILES
             for _ in re.finditer(re.escape(sentence), path.read_text())]
    assert [str(p) for p in found] == ["genae_lightning/autoencoder/docstrings.py"]
    # the docs extension imports the text, it does not copy it
    assert sentence not in (REPO / "docs" / "griffe_genae.py").read_text()


def test_no_class_in_the_package_repeats_a_shared_description() -> None:
    repeated = []
    for path in PACKAGE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for name, text in _args(ast.get_docstring(node)).items():
                    if name in SHARED_ARGS and text == _words(SHARED_ARGS[name]):
                        repeated.append(f"{path.name}:{node.name}.{name}")
    assert not repeated


def test_entries_go_in_the_signature_order_and_own_lines_win() -> None:
    doc = '''Summary.

    Args:
        latent_dim: Mine.
        beta: A weight,
            over two lines.

    Reference:
        A paper.
    '''
    out = with_shared_args(doc, ["image_shape", "latent_dim", "beta", "decoder"],
                           {"image_shape": "Shape.", "latent_dim": "Shared.", "decoder": "Dec."})
    assert out == ("Summary.\n\nArgs:\n    image_shape: Shape.\n    latent_dim: Mine.\n"
                   "    beta: A weight,\n        over two lines.\n    decoder: Dec.\n\n"
                   "Reference:\n    A paper.")
    assert with_shared_args(None, ["latent_dim"]) is None


def test_a_docstring_without_args_gets_a_section_before_its_other_sections() -> None:
    out = with_shared_args("Summary.\n\nReference:\n    A paper.", ["latent_dim"],
                           {"latent_dim": "Shared."})
    assert out == "Summary.\n\nArgs:\n    latent_dim: Shared.\n\nReference:\n    A paper."
    assert with_shared_args("Summary.", ["latent_dim"], {"latent_dim": "Shared."}) == (
        "Summary.\n\nArgs:\n    latent_dim: Shared.")


def test_a_user_subclass_gets_the_shared_entries() -> None:
    class Mine(GenerativeAutoencoder):
        """My method.

        Args:
            weight: Mine.
        """

        def __init__(self, image_shape=(1, 8, 8), weight: float = 1.0, **kwargs) -> None:
            super().__init__(image_shape, **kwargs)

    assert list(_args(Mine.__doc__)) == ["image_shape", "weight"]


def test_the_cli_help_of_a_method_shows_the_shared_arguments(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "WAEMMD"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in ("image_shape", "latent_dim", "backbone", "optimizer", "encoder", "decoder"):
        assert f"--model.{name}" in help_text, name
    assert "(C, H, W) of the data; linked from the DataModule by the CLI." in help_text
    assert "Your own decoder module, (B, latent_dim) -> (B, C, H, W); needs ``encoder``." in (
        help_text)


def test_the_docs_site_reads_the_shared_entries_from_the_source() -> None:
    griffe = pytest.importorskip("griffe")
    from tests.test_docs_site import _extension

    pkg = griffe.load("genae_lightning", search_paths=[str(REPO)],
                      extensions=griffe.Extensions(_extension().GenaeDocs()))
    for cls in (methods.InjFlow, methods.WAEGAN, GenerativeAutoencoder):
        obj = pkg.modules_collection[f"{cls.__module__}.{cls.__qualname__}"]
        sections = obj.docstring.parse("google")
        params = next(s.value for s in sections if s.kind.value == "parameters")
        assert [p.name for p in params] == list(_args(cls.__doc__)), cls.__name__
