"""Config files of ``genae fit``: bundled names, composition from parts, run folders.

- **Names.** ``--config quickstart`` (or ``injflow_cifar``, ``injflow_cifar.yaml``,
  ``configs/injflow_cifar.yaml``) finds the config shipped with the package when no such file
  exists; an existing path always wins. ``genae configs`` lists the bundled configs.
- **Composition.** A config may start with ``defaults: [trainer/paper.yaml, data/mnist.yaml,
  ...]``: part files (paths relative to the config) merged in order, then the config's own keys
  on top. Mappings merge key by key; lists and scalars replace. The result is handed to
  LightningCLI as one config, so ``--print_config`` and the run's saved ``config.yaml`` show it
  fully resolved (without ``defaults``). A composed config's ``trainer.default_root_dir``
  defaults to ``outputs/<file stem>``, its ``CSVLogger`` is named after the file stem and its W&B
  logger's group is the file stem.
- **Run names.** :func:`config_origin` reads from the command line the config's name (the first
  ``--config`` file's stem) and the settings given after it (flags, further ``--config``
  files); ``genae fit`` names its W&B run from them
  (:func:`~genae_lightning.loggers.config_run_name`).
- **Run folders.** Loggers given without ``save_dir`` write under ``trainer.default_root_dir``
  (:func:`fill_logger_dirs`), and so do checkpoints and image grids, which follow the first
  logger: ``--trainer.default_root_dir X`` moves a whole run.

Why not jsonargparse's own composition: it merges several ``--config`` flags in order, but only
those on the command line, so a file cannot name its parts and every run (and the sweep's
command) would repeat them, the run then named after the first part. Inside a file, a group or
class key may hold a path (``trainer: part.yaml``, ``model: part.yaml``), but that file is the
key's whole value: it sets nothing outside the key (``trainer/paper.yaml`` also sets
``seed_everything``), the same file cannot amend it, and jsonargparse would open it after the
allow-list looked (so ``check_names`` refuses such a value). ``parser_mode``
only swaps the loader (``omegaconf`` interpolates; ``jsonnet`` imports, but is not YAML). None
derives ``outputs/<stem>`` and the logger names from the config's file name.
"""

import argparse
import difflib
from pathlib import Path
from typing import Any

import yaml

from genae_lightning.loggers import ConfigOrigin
from genae_lightning.trust import CONFIG_KINDS, check_names

MAX_DEPTH = 8  # nesting of `defaults` (a cycle stops here with an error)
# flags that set nothing (they never name a run)
NOT_OVERRIDES = frozenset({"print_config", "help", "h"})
_last_origin: ConfigOrigin | None = None  # of the latest expand_config_args


def read_yaml(path: str | Path) -> Any:
    """The plain data of a YAML file (``yaml.safe_load``: no Python objects are ever built).

    Raises:
        ValueError: The file is not UTF-8 text, is empty (or only comments), is not valid YAML,
            or uses a tag plain YAML does not have (e.g. ``!!python/object/apply``); the message
            names the file and, for YAML errors, the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text (UTF-8) file, so not a YAML config; pass the "
                         "config's .yaml file") from err
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        if isinstance(err, yaml.constructor.ConstructorError):
            raise ValueError(
                f"{where}: {err.problem}: configs are read as plain YAML, which builds no Python "
                "objects; remove the tag and name classes with `class_path:` and `init_args:`"
            ) from None
        context = f" ({err.context})" if err.context else ""
        raise ValueError(f"{where}: not valid YAML: {err.problem}{context}; fix the YAML there "
                         "(indentation, a missing ':', unclosed brackets or quotes)") from None
    except yaml.reader.ReaderError as err:
        line = text[:err.position].count("\n") + 1
        raise ValueError(f"{path}, line {line}: not valid YAML: character {err.character!r} "
                         f"is not allowed ({err.reason}); remove it") from None
    if data is None:
        raise ValueError(f"{path} is empty (no YAML, only blanks or comments): expected a "
                         "mapping such as `trainer:`, `model:` and `data:` sections")
    return data


def config_dir() -> Path:
    """The bundled configs: ``genae_lightning/configs`` when installed, else ``configs/``."""
    package = Path(__file__).resolve().parents[1]  # genae_lightning/
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def available_configs() -> dict[str, Path]:
    """Bundled configs by name: ``quickstart``, ..., and the W&B sweeps as ``sweeps/<name>``."""
    root = config_dir()
    found = {p.stem: p for p in sorted(root.glob("*.yaml"))}
    found.update({f"sweeps/{p.stem}": p for p in sorted(root.glob("sweeps/*.yaml"))})
    return found


def resolve_config(value: str) -> Path:
    """The config file that ``value`` names: an existing path, else a bundled config's name.

    Raises:
        FileNotFoundError: Neither a file nor a bundled name; the message lists close matches.
        IsADirectoryError: ``value`` is a folder.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise IsADirectoryError(f"config {value!r} is a folder, not a config file: pass a .yaml "
                                "file, or a bundled config's name (`genae configs` lists them)")
    name = value.removeprefix("./").removeprefix("configs/")
    for suffix in (".yaml", ".yml"):
        name = name.removesuffix(suffix)
    configs = available_configs()
    by_stem = {n.removeprefix("sweeps/"): p for n, p in configs.items()}
    if name in configs or name in by_stem:
        return configs.get(name) or by_stem[name]
    close = difflib.get_close_matches(name, list(configs), n=5, cutoff=0.5)
    raise FileNotFoundError(
        f"config {value!r}: expected an existing file or the name of a bundled config, got "
        f"neither (no such file, and no {name}.yaml in {config_dir()}). "
        + (f"Close matches: {', '.join(close)}. " if close else "")
        + "Run `genae configs` to list the bundled configs."
    )


def merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _load(path: Path, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise ValueError(f"config {path}: `defaults` nest deeper than {MAX_DEPTH} levels; "
                         "expected parts without a cycle, remove the file that lists itself")
    data = read_yaml(path)
    if not isinstance(data, dict) or "defaults" not in data:
        return data
    parts = data.pop("defaults")
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"config {path}: `defaults` must be a list of part files (paths "
                         f"relative to the config), got {parts!r}")
    composed: dict = {}
    for part in parts:
        part_path = path.parent / part
        if not part_path.is_file():
            raise FileNotFoundError(f"config {path}: part {part!r} of `defaults` not found at "
                                    f"{part_path}; expected a path relative to the config")
        loaded = _load(part_path, depth + 1)
        if not isinstance(loaded, dict):
            raise ValueError(f"config {path}: part {part_path} must be a mapping, got "
                             f"{type(loaded).__name__}")
        composed = merge(composed, loaded)
    return merge(composed, data)


def compose(path: str | Path) -> object:
    """The config at ``path`` with its ``defaults`` parts merged in (unchanged without them).

    A composed config gets ``trainer.default_root_dir: outputs/<stem>``, its CSVLogger
    ``name: <stem>`` and its W&B logger ``group: <stem>`` unless it sets them.
    """
    path = Path(path)
    raw = read_yaml(path)
    has_defaults = isinstance(raw, dict) and "defaults" in raw
    config = _load(path, 0)
    if not has_defaults:
        return config
    trainer = config.setdefault("trainer", {})
    trainer.setdefault("default_root_dir", f"outputs/{path.stem}")
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, dict) and str(logger.get("class_path")).endswith("CSVLogger"):
            logger.setdefault("init_args", {}).setdefault("name", path.stem)
        if isinstance(logger, dict) and str(logger.get("class_path")).endswith("WandbLogger"):
            logger.setdefault("init_args", {}).setdefault("group", path.stem)
    return config


def _is_inline_yaml(value: str) -> bool:
    return not Path(value).exists() and any(c in value for c in ":{}\n")


def expand_config_args(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config``/``-c`` value resolved and, if composed, expanded.

    A bundled name becomes its path; a config with ``defaults`` becomes its composed YAML text
    (LightningCLI accepts YAML text wherever it accepts a config path). What the command line
    set is kept for :func:`last_config_origin` (it names the run).
    """
    global _last_origin
    _last_origin = config_origin(argv)
    out: list[str] = []
    expect_value = False
    for arg in argv:
        if expect_value:
            out.append(_expand(arg))
            expect_value = False
        elif arg in ("--config", "-c"):
            out.append(arg)
            expect_value = True
        elif arg.startswith("--config="):
            out.append("--config=" + _expand(arg.removeprefix("--config=")))
        else:
            out.append(arg)
    return out


def last_config_origin() -> ConfigOrigin | None:
    """The :func:`config_origin` of the latest :func:`expand_config_args` (None before any).

    ``genae fit`` expands its arguments and then builds its LightningCLI from them, which asks
    for this to name its W&B run.
    """
    return _last_origin


def config_origin(argv: list[str]) -> ConfigOrigin | None:
    """The named config of a command line and the settings given after it.

    The first ``--config`` names the config (its file's stem: ``injflow_mnist``); every flag
    after it (``--model.init_args.optimizer.init_args.lr 0.002``) and every leaf setting of a
    later ``--config`` file is an override, in order. None when no ``--config`` is given.

    >>> config_origin(["fit", "--config", "injflow_mnist", "--model.init_args.eta=0.2"])
    ConfigOrigin(name='injflow_mnist', overrides=(('model.init_args.eta', '0.2'),))
    """
    origin: ConfigOrigin | None = None
    overrides: list[tuple[str, object]] = []
    i = 0
    while i < len(argv):
        if not argv[i].startswith("-"):  # the subcommand
            i += 1
            continue
        key, value, i = _flag(argv, i)
        if key in ("config", "c") and origin is None:
            origin = ConfigOrigin(_config_name(value))
        elif key in ("config", "c"):
            overrides += _file_settings(value)
        elif origin is not None and key not in NOT_OVERRIDES:
            overrides.append((key, value))
    return None if origin is None else ConfigOrigin(origin.name, tuple(overrides))


def _flag(argv: list[str], i: int) -> tuple[str, str | None, int]:
    """``(key, value, next index)`` of the flag at ``argv[i]`` (``--k v``, ``--k=v``, ``-c v``)."""
    flag = argv[i]
    if "=" in flag:
        key, value = flag.split("=", 1)
        return key.lstrip("-"), value, i + 1
    if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        return flag.lstrip("-"), argv[i + 1], i + 2
    return flag.lstrip("-"), None, i + 1


def _config_name(value: str | None) -> str | None:
    """A ``--config`` value's name: its file's stem; None for inline YAML or a run's config.

    A run's saved ``config.yaml`` names no config: its W&B logger already holds the run's name.
    """
    if value is None or _is_inline_yaml(value):
        return None
    try:
        stem = resolve_config(value).stem
    except (OSError, ValueError):  # expand_config_args names the problem
        return None
    return None if stem == "config" else stem


def _file_settings(value: str | None) -> list[tuple[str, object]]:
    """The leaf settings of a further ``--config`` (a file, a bundled name or inline YAML)."""
    if value is None:
        return []
    try:
        data = yaml.safe_load(value) if _is_inline_yaml(value) else compose(resolve_config(value))
    except (OSError, ValueError, yaml.YAMLError):  # expand_config_args names the problem
        return []
    return _leaves(data) if isinstance(data, dict) else []


def _leaves(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``{"model": {"init_args": {"eta": 1}}}`` -> ``[("model.init_args.eta", 1)]``."""
    found: list[tuple[str, object]] = []
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        found += _leaves(value, path) if isinstance(value, dict) else [(path, value)]
    return found


def _expand(value: str) -> str:
    if _is_inline_yaml(value):
        return value
    path = resolve_config(value)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ValueError(f"config {path} holds a YAML {type(raw).__name__}, expected a mapping "
                         "of sections such as `trainer:`, `model:` and `data:`")
    composed = compose(path) if "defaults" in raw else raw
    check_names(composed, where=str(path), key="", kinds=CONFIG_KINDS)  # before any import
    if "defaults" in raw:
        return yaml.safe_dump(composed, sort_keys=False)
    return str(path)


def fill_logger_dirs(config: argparse.Namespace) -> None:
    """Give every logger of a parsed config without ``save_dir`` the trainer's root folder.

    ``config`` is LightningCLI's parsed (not yet instantiated) config of one subcommand.
    Checkpoints (``ModelCheckpoint`` without ``dirpath``) and image grids (``ImageLogger``
    without ``save_dir``) follow the first logger, so the whole run lands under
    ``trainer.default_root_dir`` (the working directory when unset, as in Lightning).
    """
    trainer = config.get("trainer")
    if trainer is None:
        return
    root = str(trainer.get("default_root_dir") or ".")
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init_args = getattr(logger, "init_args", None)
        if init_args is not None and "save_dir" in init_args and init_args.save_dir is None:
            init_args.save_dir = root
