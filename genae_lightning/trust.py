"""Which classes a file may name: an allow-list, looked up before anything is imported.

A checkpoint, a ``model.pt``, a pretrained ``config.json``, a run's ``config.yaml`` and a
``--config`` file name classes by their import path (``genae.method``, ``class_path``,
``_class_path``). No such string is ever imported or handed to jsonargparse's class resolution.
It is looked up in the allow-list instead: the classes genae-lightning itself defines under the
bases marked with :func:`trusted_base` (methods, backbones, priors, constraints, DataModules, and
for config files callbacks and loggers), and torch's optimizers and learning-rate schedulers.
The lookup is by name over classes already defined; a name it does not find is refused with an
:class:`UntrustedClassError` that names the file, the key and the value.

Your own classes (an encoder, a backbone, a DataModule) load only when you hand them over:
``from_pretrained(folder, trusted=[MyBackbone])``, ``load_method(path, trusted=[...])`` or
``genae ... --trust mypackage.MyBackbone`` on the command line.

>>> import torch
>>> lookup("torch.optim.Adam", ("optimizer",), where="model.pt", key="optimizer")
<class 'torch.optim.adam.Adam'>
>>> lookup("this.Zen", ("optimizer",), where="model.pt", key="optimizer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
genae_lightning.trust.UntrustedClassError: model.pt: optimizer names 'this.Zen', which is not ...
"""

import contextlib
import functools
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

T = TypeVar("T", bound=type)

# kind -> (base class, the package prefixes its trusted subclasses are defined under)
_BASES: dict[str, tuple[type, tuple[str, ...]]] = {
    "optimizer": (torch.optim.Optimizer, ("torch.optim.",)),
    "lr_scheduler": (torch.optim.lr_scheduler.LRScheduler, ("torch.optim.",)),
}
# Kinds a model file's nested ``class_path`` may name (a method's settings).
SETTING_KINDS = ("backbone", "prior", "constraint", "optimizer", "lr_scheduler")
# Settings whose string value LightningCLI reads as a class (``model: pkg.Class``).
CLASS_VALUED = frozenset({"model", "data", "backbone", "prior", "constraint", "optimizer",
                          "lr_scheduler", "logger", "callbacks", "plugins", "profiler"})
# Keys of a ``{"class_path", "init_args"}`` mapping.
CLASS_KEYS = frozenset({"class_path", "init_args"})


# Classes the user trusted for the whole command (``genae ... --trust module.Class``).
_SESSION: list[type] = []


class UntrustedClassError(ValueError):
    """A file names a class that genae-lightning does not load without the caller's trust."""


@contextlib.contextmanager
def trusting(classes: Iterable[type]) -> Iterator[None]:
    """Trust ``classes`` (the user's own, named on the command line) inside the block."""
    added = [cls for cls in classes if cls not in _SESSION]
    _SESSION.extend(added)
    try:
        yield
    finally:
        for cls in added:
            _SESSION.remove(cls)


def split_trust(argv: list[str]) -> tuple[list[str], list[type]]:
    """``argv`` without its ``--trust module.Class`` options, and the classes they name."""
    rest, paths, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--trust="):
            paths.append(arg.split("=", 1)[1])
        elif arg == "--trust":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise ValueError("--trust needs a value: --trust module.Class (your own class "
                                 "that a checkpoint or config may name)")
            paths.append(argv[i + 1])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return rest, import_trusted(paths)


def trusted_base(kind: str, *packages: str) -> Callable[[T], T]:
    """Class decorator: the subclasses of this base defined in ``packages`` may be named by files.

    Args:
        kind: The allow-list's name for these classes (``"method"``, ``"backbone"``, ...).
        *packages: Module prefixes of the trusted subclasses (default: genae-lightning's own).
    """

    def mark(base: T) -> T:
        _BASES[kind] = (base, packages or ("genae_lightning.",))
        return base

    return mark


def _lightning_bases() -> None:
    """Callbacks, loggers and Trainer plugins a ``--config`` file may name (Lightning's, ours)."""
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch import callbacks, loggers, profilers
    from lightning.pytorch.plugins import precision

    packages = ("genae_lightning.", "lightning.pytorch.", "lightning.fabric.")
    for kind, base in (("callback", callbacks.Callback), ("logger", loggers.Logger),
                       ("checkpoint_io", CheckpointIO), ("profiler", profilers.Profiler),
                       ("precision", precision.Precision)):
        _BASES.setdefault(kind, (base, packages))


_LIGHTNING_KINDS = ("callback", "logger", "checkpoint_io", "profiler", "precision")
# Kinds a ``--config`` file may name.
CONFIG_KINDS = ("method", "data", *SETTING_KINDS, *_LIGHTNING_KINDS)
# A dotted import path (``pkg.module.Class``), as a config's ``model: pkg.Class`` may give.
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _subclasses(base: type) -> list[type]:
    found, todo = [base], [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def allowed(kinds: Iterable[str]) -> list[type]:
    """The classes of these kinds a file may name (defined in genae-lightning or torch.optim)."""
    classes: list[type] = []
    if any(kind in _LIGHTNING_KINDS for kind in kinds):
        _lightning_bases()
    for kind in kinds:
        if kind not in _BASES:
            raise KeyError(f"unknown kind of class {kind!r}; known: {sorted(_BASES)}")
        base, packages = _BASES[kind]
        classes += [cls for cls in _subclasses(base)[1:]
                    if cls.__module__.startswith(packages) and not inspect.isabstract(cls)
                    and "<locals>" not in cls.__qualname__
                    and not cls.__qualname__.startswith("_") and cls not in classes]
    return classes


def class_path(cls: type) -> str:
    """The import path genae writes for a class: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


# Modules of genae-lightning that moved, old path -> new: names written by older versions (a
# checkpoint's hyperparameters, a run's config.yaml, a pretrained folder's config.json) still
# name their classes.
MOVED_MODULES = {
    **{f"genae_lightning.methods.{name}": f"genae_lightning.autoencoder.{name}"
       for name in ("base", "networks", "seeding", "inputs", "nonfinite", "injected",
                    "batch_statistics", "constraints", "gaussian", "adversarial")},
    "genae_lightning.methods.checkpointing": "genae_lightning.checkpoints.module",
    "genae_lightning.methods.hparams": "genae_lightning.checkpoints.hparams",
    "genae_lightning.methods.loading": "genae_lightning.checkpoints.loading",
    "genae_lightning.methods.pretrained": "genae_lightning.checkpoints.pretrained",
    "genae_lightning.checkpoint": "genae_lightning.checkpoints.reading",
    "genae_lightning.checkpoint_io": "genae_lightning.checkpoints.io",
}


def names_class(cls: type, name: str, short: bool) -> bool:
    """Whether ``name`` names ``cls``: its path, a package above its module, or its name.

    A package of genae-lightning that re-exports the class names it too
    (``genae_lightning.methods.Penalty``), as does its path before a move (``MOVED_MODULES``).
    Nothing is imported: a package counts only once it is loaded.
    """
    prefix, _, qualname = name.rpartition(".")
    prefix = MOVED_MODULES.get(prefix, prefix)
    if qualname != cls.__qualname__ and f"{prefix}.{qualname}" != class_path(cls):
        return False
    if not prefix:
        return short
    module = cls.__module__
    if module == prefix or module.startswith(prefix + "."):
        return True
    package = sys.modules.get(prefix) if prefix.startswith("genae_lightning") else None
    return package is not None and getattr(package, qualname, None) is cls


def lookup(name: Any, kinds: Iterable[str], *, where: str, key: str,
           trusted: Iterable[type] = ()) -> type:
    """The allowed class that ``name`` (read from the file ``where``, at ``key``) names.

    Nothing is imported: ``name`` is compared with the classes already defined. Your own classes
    count only when passed in ``trusted`` (and only by their full path ``module.QualName``).

    Raises:
        UntrustedClassError: ``name`` is not a string naming an allowed (or trusted) class.
    """
    kinds = tuple(kinds)
    if isinstance(name, str) and name:
        candidates = allowed(kinds)
        matches = [cls for cls in candidates if names_class(cls, name, short=True)]
        matches += [cls for cls in (*trusted, *_SESSION)
                    if class_path(cls) == name and cls not in matches]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UntrustedClassError(
                f"{where}: {key} names {name!r}, which is ambiguous here "
                f"({', '.join(class_path(c) for c in matches)}); write the full path")
    examples = ", ".join(class_path(c) for c in allowed(kinds)[:4])
    raise UntrustedClassError(
        f"{where}: {key} names {name!r}, which is not a class genae-lightning loads from a file "
        f"(allowed: genae-lightning's and torch.optim's {' / '.join(kinds)} classes, e.g. "
        f"{examples}). Nothing was imported. If this is your own class and you trust the file, "
        "hand the class over: trusted=[YourClass] in Python, --trust module.YourClass on the "
        "command line")


def import_trusted(paths: Iterable[str]) -> list[type]:
    """Classes named on the command line with ``--trust module.Class`` (the user's own words)."""
    classes = []
    for path in paths:
        module, _, name = str(path).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name) if module else None
        except ImportError as err:
            raise ValueError(f"--trust {path!r}: cannot import module {module!r} ({err})") from err
        if not isinstance(cls, type):
            raise ValueError(f"--trust {path!r}: expected module.Class naming a class, got "
                             f"{type(cls).__name__}")
        classes.append(cls)
    return classes


def is_class_config(value: Any) -> bool:
    """Whether ``value`` is a ``{"class_path": ..., "init_args": {...}}`` mapping."""
    return isinstance(value, Mapping) and "class_path" in value and set(value) <= CLASS_KEYS


def build(value: Any, *, where: str, key: str, kinds: Iterable[str] = SETTING_KINDS,
          trusted: Iterable[type] = ()) -> Any:
    """``value`` read from a file with every class config replaced by its (allowed) object.

    Optimizers and schedulers become ``functools.partial(cls, **init_args)`` (they take the
    parameters later); other classes are instantiated with their (built) ``init_args``.
    """
    kinds, trusted = tuple(kinds), tuple(trusted)
    value = as_config(value)  # an object unpickled from an older file: checked by its class too
    if is_class_config(value):
        cls = lookup(value["class_path"], kinds, where=where, key=f"{key}.class_path",
                     trusted=trusted)
        init = value.get("init_args") or {}
        if not isinstance(init, Mapping):
            raise ValueError(f"{where}: {key}.init_args must be a mapping, got "
                             f"{type(init).__name__}")
        args = {str(k): build(v, where=where, key=f"{key}.init_args.{k}", kinds=kinds,
                              trusted=trusted) for k, v in init.items()}
        if issubclass(cls, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
            return functools.partial(cls, **args)
        try:
            return cls(**args)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {key} = {class_path(cls)}(**{args!r}) failed: "
                             f"{err}") from err
    if isinstance(value, Mapping):
        return {k: build(v, where=where, key=f"{key}.{k}", kinds=kinds, trusted=trusted)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(build(v, where=where, key=f"{key}[{i}]", kinds=kinds,
                                 trusted=trusted) for i, v in enumerate(value))
    return value


def check_names(value: Any, *, where: str, key: str, kinds: Iterable[str],
                trusted: Iterable[type] = ()) -> Any:
    """``value`` with every class it names checked against the allow-list and written in full.

    For data that jsonargparse instantiates afterwards (a run's ``config.yaml``, a ``--config``
    file): every ``class_path`` / ``_class_path``, and a dotted string where LightningCLI takes a
    class (``model: pkg.Class``), must name an allowed class; it becomes that class's full path,
    so the only names jsonargparse resolves are those of classes already imported.
    """
    kinds, trusted = tuple(kinds), tuple(trusted)
    folders = (Path.cwd(), Path(where).parent)

    def names_a_class(k: str, v: Any) -> bool:
        return k in ("class_path", "_class_path") or (
            isinstance(v, str) and bool(_DOTTED.fullmatch(v)) and k in CLASS_VALUED)

    def walk(v: Any, k: str, path: str) -> Any:
        if names_a_class(k, v):
            return class_path(lookup(v, kinds, where=where, key=path, trusted=trusted))
        if isinstance(v, str) and names_a_config_file(v, folders):
            raise UntrustedClassError(
                f"{where}: {path} names the file {v!r}, which holds settings that jsonargparse "
                "would read after this check, classes included. Nothing was imported. A config "
                "names its parts under `defaults:` (composed and checked by genae); move the "
                "file's settings there or into this file")
        if isinstance(v, Mapping):
            return {ck: walk(cv, str(ck), f"{path}.{ck}".lstrip(".")) for ck, cv in v.items()}
        if isinstance(v, list | tuple):
            return [walk(item, k, f"{path}[{i}]") for i, item in enumerate(v)]
        return v

    return walk(value, key.rpartition(".")[2], key)


def names_a_config_file(value: str, folders: Iterable[Path]) -> bool:
    """Whether ``value`` is the path of a text file holding a YAML/JSON mapping or list.

    jsonargparse reads such a value, given where it takes a class, a group or a list, as a
    config of its own. Binary files (weights, checkpoints) and folders are no config.
    """
    if not value or "\n" in value or len(value) > 4096:
        return False
    for folder in folders:
        try:
            path = folder / Path(value).expanduser()
            if not path.is_file():
                continue
            with path.open("rb") as f:
                head = f.read(65536)
            if b"\0" in head:
                continue
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(loaded, dict | list):
            return True
    return False


def as_config(value: Any) -> Any:
    """An allowed object (backbone, prior, optimizer partial, ...) as its class config.

    The inverse of :func:`build` for what a method keeps as hyperparameters, so they are plain
    data: ``{"class_path": ..., "init_args": {...}}``. Other values are returned unchanged.
    """
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        return {"class_path": class_path(value), "init_args": {}}
    if isinstance(value, functools.partial) and isinstance(value.func, type) and not value.args:
        return {"class_path": class_path(value.func),
                "init_args": {k: as_config(v) for k, v in value.keywords.items()}}
    cls = type(value)
    if any(isinstance(value, base) for kind, (base, _) in _BASES.items()
           if kind not in ("method", "data")):
        if hasattr(value, "init_args") and callable(value.init_args):
            init = value.init_args()
        else:
            params = inspect.signature(cls.__init__).parameters
            init = {name: getattr(value, name) for name in params
                    if name != "self" and hasattr(value, name)}
        return {"class_path": class_path(cls),
                "init_args": {k: as_config(v) for k, v in init.items()}}
    if isinstance(value, list | tuple):
        converted = [as_config(v) for v in value]
        unchanged = all(a is b for a, b in zip(converted, value, strict=True))
        return value if unchanged else type(value)(converted)  # a plain tuple stays one
    return value
