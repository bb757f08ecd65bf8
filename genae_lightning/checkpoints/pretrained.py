"""Share trained methods as folders (and on the Hugging Face Hub), the way pythae users do.

A pretrained folder follows the Hub's conventions for a model repository:

- ``model.safetensors``: every tensor of the method's state dict, the fitted post-hoc priors'
  included (``posthoc_priors.gmm.means``, ...). safetensors holds tensors only: reading it runs
  no code.
- ``config.json``: plain JSON, read with no pickle at all. ``model`` is the method's whole init
  as ``{"class_path", "init_args"}``, with its backbone, prior, constraint and optimizer nested in
  the same form (what the ``model:`` section of a ``genae fit --config`` file holds);
  ``posthoc_priors`` gives each fitted prior's class and the names and shapes of its tensors;
  ``custom_networks`` the classes of your own ``encoder=``/``decoder=`` modules (or null);
  ``batchnorm`` the ``FitLatentPrior`` BatchNorm check of these weights (or null); then
  ``dataset``, ``license``, ``metrics``, ``format`` (2), ``library_name``,
  ``genae_lightning_version`` and ``weights``. Keys are sorted: the same model always gives the
  same bytes.
- ``README.md``: the model card. Its YAML metadata (``library_name``, ``license``, ``datasets``,
  ``tags``, ``pipeline_tag``, and ``model-index`` with the evaluated metrics) follows the Hub's
  model card specification; the text gives the method, paper, dataset, priors, metrics and usage.

Folders of format 1 (weights in ``model.pt``, a checkpoint dictionary read weights-only through
:func:`genae_lightning.checkpoints.reading.read_checkpoint`) still load.

Every class that ``config.json`` names is looked up in the allow-list of
:mod:`genae_lightning.trust`; nothing is imported. Your own classes load when you hand them over
(``trusted=[MyBackbone]``), and your own ``encoder=``/``decoder=`` modules are passed again.

Usage::

    save_pretrained(model, "my-injflow", dataset="MNIST", metrics={"fid/gmm": 12.3})
    model = from_pretrained("my-injflow")  # or a Hub id: "user/my-injflow"

or, from a ``genae fit`` checkpoint, ``genae export --ckpt_path last.ckpt --out my-injflow``.

Hub transfers (:func:`push_to_hub`, and :func:`from_pretrained` with a Hub id) need the optional
``huggingface_hub`` package: ``pip install "genae-lightning[hub]"``. Saving and loading a local
folder never imports it.

Why not ``huggingface_hub.ModelHubMixin`` / ``ModelCard``: the mixin would be a base class of
every method, so importing genae-lightning would need huggingface_hub, which is an optional
extra. Its ``from_pretrained`` builds ``cls(**config)`` for the class it is called on, while a
genae folder names its own method class and nested classes, which must pass the allow-list
first. Its ``save_pretrained`` writes file by file into the folder (through a symlink, over a
``README.md`` it did not write), where ours is atomic and keeps files it did not write. And a
card written with ``ModelCard`` would need the package for a local save. So the folder and card
are written here, and only the transfers go through huggingface_hub (``HfApi.upload_folder``,
``snapshot_download``).
"""

import difflib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import safetensors
import safetensors.torch
import torch
import yaml
from torch import Tensor

from genae_lightning.checkpoints.loading import method_from_checkpoint
from genae_lightning.checkpoints.module import CheckpointedModule
from genae_lightning.checkpoints.reading import (
    CorruptCheckpointError,
    check_structure,
    read_checkpoint,
)
from genae_lightning.priors.posthoc import POSTHOC_PRIORS
from genae_lightning.trust import as_config, class_path, is_class_config

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "model.pt"  # format 1
CARD_NAME = "README.md"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
LIBRARY_NAME = "genae-lightning"
POSTHOC_PREFIX = "posthoc_priors."
SHARED_MODE = 0o644  # the files of a folder made to be shared: readable by all

# What a model card says of a method that cites no paper (its class's and prior's ``paper``).
BASELINE = "a baseline of genae-lightning (docs/methods/baselines.md)"


def paper_of(model: CheckpointedModule) -> str | None:
    """The paper a model implements: its class's ``paper``, else its prior's; None for a baseline.

    ``VAE(prior=DecoupledPrior())`` is the dpVAE paper's (docs/citing.md has the BibTeX).
    """
    return type(model).paper or getattr(getattr(model, "prior", None), "paper", None)


def _method_path(model: CheckpointedModule) -> str:
    return class_path(type(model))


# ---------------------------------------------------------------------------------------------
# config.json


def _json_value(value: Any, key: str) -> Any:
    """``value`` (a hyperparameter, already a class config) as JSON data; refuses objects.

    Tuples become lists. An object that is not plain data could not be read back, so it is
    refused here rather than written as its ``repr``.
    """
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"save_pretrained: hyperparameter {key} is a {type(value).__name__}, which config.json "
        "cannot hold: pass a genae-lightning class (or a Backbone/Prior subclass of yours, "
        "loaded back with trusted=[...]) or plain values")


def model_config(model: CheckpointedModule) -> dict[str, Any]:
    """The method's whole init as ``{"class_path", "init_args"}`` (nested classes likewise).

    Lightning's and LightningCLI's own entries (``_class_path``, ``_instantiator``) are left out,
    and so are ``encoder``/``decoder`` modules, which are not settings (see ``custom_networks``).
    """
    init = {name: _json_value(as_config(value), f"hyper_parameters.{name}")
            for name, value in model.hparams.items() if not str(name).startswith("_")}
    return {"class_path": _method_path(model), "init_args": init}


def posthoc_config(state: Mapping[str, Tensor], names: Iterable[str]) -> dict[str, Any]:
    """Each fitted post-hoc prior's class and its tensors (name in the weights -> shape)."""
    return {name: {"class_path": class_path(POSTHOC_PRIORS[name]),
                   "tensors": {key: list(tensor.shape) for key, tensor in sorted(state.items())
                               if key.startswith(f"{POSTHOC_PREFIX}{name}.")}}
            for name in sorted(names)}


def _checked_metrics(metrics: Mapping[str, Any] | None) -> dict[str, int | float]:
    """``metrics`` as a dict of finite numbers; a TypeError names the first other entry."""
    checked = dict(metrics or {})
    for key, value in checked.items():
        if not isinstance(key, str) or isinstance(value, bool) or \
                not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError(f"save_pretrained: metrics must map names to finite numbers, got "
                            f"{key!r}: {value!r}")
    return checked


def folder_config(model: CheckpointedModule, state: Mapping[str, Tensor], dataset: str | None,
                  license: str | None, metrics: dict[str, int | float]) -> dict[str, Any]:
    """The ``config.json`` of a pretrained folder of ``model`` (``state``: its weights)."""
    from genae_lightning import __version__

    networks = getattr(model, "custom_networks", None)
    batchnorm = getattr(model, "batchnorm_check", None)
    return {
        "format": FORMAT_VERSION,
        "library_name": LIBRARY_NAME,
        "genae_lightning_version": __version__,
        "model": model_config(model),
        "posthoc_priors": posthoc_config(state, model.posthoc_priors.keys()),
        "custom_networks": dict(networks) if networks else None,
        "batchnorm": _json_value(dict(batchnorm), "batchnorm") if batchnorm else None,
        "dataset": dataset,
        "license": license,
        "metrics": metrics,
        "weights": WEIGHTS_NAME,
    }


def config_text(config: Mapping[str, Any]) -> str:
    """``config.json``'s text: sorted keys, so the same config always gives the same bytes."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# saving


def weights_of(model: CheckpointedModule) -> dict[str, Tensor]:
    """The method's state dict as CPU tensors of their own (safetensors refuses shared memory)."""
    return {key: tensor.detach().to("cpu", copy=True).contiguous()
            for key, tensor in model.state_dict().items()}


def weights_bytes(state: Mapping[str, Tensor]) -> bytes:
    """The ``model.safetensors`` of ``state`` (tensors in name order: the same bytes each time)."""
    return safetensors.torch.save(dict(state), metadata={"format": "pt"})


def save_pretrained(
    model: CheckpointedModule,
    folder: str | Path,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    overwrite: bool = False,
    license: str | None = None,
) -> Path:
    """Write ``model`` (weights, whole init, post-hoc priors) and its model card to a folder.

    The save is atomic: every file is written to a temporary file in the folder first and renamed
    into place only when all were written, so a failed save (full disk, a value that cannot be
    serialised, an interrupt) leaves the folder's previous contents intact. Temporary files of an
    earlier save that was killed are removed. A file that genae-lightning did not write (your own
    ``README.md`` or ``config.json``) is only replaced with ``overwrite=True``, and a symlink never.
    A ``model.pt`` that an earlier genae-lightning (format 1) wrote there is removed.

    Args:
        model: A genae-lightning method, e.g. after ``trainer.fit`` with ``FitLatentPrior``.
        folder: The folder to write (created when missing).
        dataset: The training dataset's name, for the card (e.g. ``"MNIST"``).
        metrics: Measured metrics for the card, e.g. ``{"fid/gmm": 12.3, "knn/acc": 0.97}``.
        overwrite: Replace files of these names that genae-lightning did not write.
        license: The license of the weights, for the card (e.g. ``"mit"``).

    Returns:
        The folder.

    Raises:
        TypeError: ``model`` is no genae-lightning method, an argument has the wrong type, or a
            hyperparameter is an object config.json cannot hold.
        FileExistsError: A target is a symlink, or a file genae-lightning did not write.
    """
    if not isinstance(model, CheckpointedModule):
        raise TypeError(f"save_pretrained expects a genae_lightning method (a "
                        f"CheckpointedModule), got {type(model).__name__}")
    for name, value in (("dataset", dataset), ("license", license)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"save_pretrained: {name} must be a string, got "
                            f"{type(value).__name__}")
    state = weights_of(model)
    config = folder_config(model, state, dataset, license, _checked_metrics(metrics))
    texts = {CONFIG_NAME: config_text(config), CARD_NAME: model_card(config, paper_of(model))}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _check_targets(folder, overwrite)
    legacy = folder / LEGACY_WEIGHTS_NAME
    stale = legacy.is_file() and not legacy.is_symlink() and _is_ours(legacy)
    write_atomically(folder, {WEIGHTS_NAME: _bytes_writer(lambda: weights_bytes(state)),
                              **{name: _bytes_writer(text.encode) for name, text in
                                 texts.items()}})
    if stale:  # format 1's weights, which the new config.json no longer names
        legacy.unlink(missing_ok=True)
    return folder


def _bytes_writer(data: Callable[[], bytes]) -> Callable[[IO[bytes]], None]:
    return lambda file: file.write(data())


def _is_ours(path: Path) -> bool:
    """Whether ``path`` (an existing file) was written by save_pretrained."""
    try:
        with path.open("rb") as file:
            head = file.read(4096).decode(errors="replace")
    except OSError:
        return False
    if path.name == CARD_NAME:
        return head.startswith("---\n") and f"library_name: {LIBRARY_NAME}" in head
    if path.name == CONFIG_NAME:
        return '"genae_lightning_version"' in head
    return (path.parent / CONFIG_NAME).is_file() and _is_ours(path.parent / CONFIG_NAME)


def _check_targets(folder: Path, overwrite: bool) -> None:
    """Refuse symlinks, and files genae-lightning did not write unless ``overwrite``."""
    for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
        path = folder / name
        if path.is_symlink():
            raise FileExistsError(f"save_pretrained: {str(path)!r} is a symlink; genae-lightning "
                                  "never writes through one. Remove it or save to another folder")
        if path.exists() and not overwrite and not _is_ours(path):
            raise FileExistsError(
                f"save_pretrained: {str(path)!r} exists and was not written by genae-lightning; "
                "pass overwrite=True to replace it, or save to another folder")


def write_atomically(folder: Path, writers: dict[str, Callable[[IO[bytes]], Any]]) -> None:
    """Write each ``name -> writer(file)`` to a temporary file, then rename them all into place.

    Nothing is renamed until every file was written and flushed to disk; a failure removes the
    temporary files and leaves the folder as it was. Leftovers of a killed save are removed first.
    """
    for name in writers:
        for stale in folder.glob(f".{name}.*.tmp"):
            warnings.warn(f"removing {stale}, a temporary file of an interrupted save",
                          stacklevel=3)
            stale.unlink(missing_ok=True)
    temps: dict[str, str] = {}
    try:
        for name, writer in writers.items():
            handle, temps[name] = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.chmod(temps[name], SHARED_MODE)  # mkstemp's 0600 would hide a shared model
            with os.fdopen(handle, "wb") as file:
                writer(file)
                file.flush()
                os.fsync(file.fileno())
        for name, temp in temps.items():
            os.replace(temp, folder / name)
    finally:
        for temp in temps.values():
            Path(temp).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# the model card


class _CardDumper(yaml.SafeDumper):
    """YAML for a card's front matter: a string with a line break is one double-quoted line."""


_CardDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text,
    style='"' if any(c in text for c in "\n\r\x85\u2028\u2029") else None))


def card_metadata(config: Mapping[str, Any]) -> dict[str, Any]:
    """The card's YAML metadata (Hub model card fields) from a folder's config.

    ``model-index`` (the evaluated metrics) is given when there are metrics and a dataset: the
    Hub reads a result only with the dataset it was measured on.
    """
    name = _method_name(config)
    dataset = config.get("dataset")
    meta: dict[str, Any] = {"library_name": LIBRARY_NAME,
                            "tags": [LIBRARY_NAME, "generative-autoencoder", name],
                            "pipeline_tag": "unconditional-image-generation"}
    if config.get("license"):
        meta["license"] = config["license"]
    if dataset:
        meta["datasets"] = [dataset]
    metrics = config.get("metrics") or {}
    if metrics and dataset:
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "unconditional-image-generation",
                     "name": "Unconditional Image Generation"},
            "dataset": {"name": dataset, "type": dataset},
            "metrics": [{"type": k, "name": k, "value": v} for k, v in metrics.items()]}]}]
    return meta


def _method_name(config: Mapping[str, Any]) -> str:
    path = (config.get("model") or {}).get("class_path") or config.get("method")
    return str(path).rsplit(".", 1)[-1]


def _usage(config: Mapping[str, Any]) -> list[str]:
    """The card's Python lines that load the model and sample from it."""
    networks = config.get("custom_networks") or {}
    prior = "gmm" if "gmm" in config["posthoc_priors"] else "standard"
    lines = ["from genae_lightning import from_pretrained", ""]
    if networks:
        lines += [f"# built with your own modules: {networks.get('encoder')} and "
                  f"{networks.get('decoder')}",
                  'model = from_pretrained("<this folder or Hub id>", '
                  "encoder=MyEncoder(...), decoder=MyDecoder(...))"]
    else:
        lines += ['model = from_pretrained("<this folder or Hub id>")']
    return [*lines, f'images = model.sample(16, prior="{prior}")']


def model_card(config: Mapping[str, Any], paper: str | None = None) -> str:
    """The ``README.md`` of a pretrained folder (Hugging Face model card) from its config.

    ``paper`` is the paper the card cites (:func:`paper_of` the model); None: a baseline.
    The YAML front matter is written with ``yaml.safe_dump``: every string is escaped, so it
    parses back to exactly the keys written.
    """
    name = _method_name(config)
    method = config["model"]["class_path"]
    dataset = config.get("dataset")
    shown = " ".join(str(dataset).split()) if dataset else None  # one line in the text
    front = yaml.dump(card_metadata(config), Dumper=_CardDumper, sort_keys=False,
                      allow_unicode=True, width=10**6).rstrip("\n")
    priors = config["posthoc_priors"]
    lines = ["---", front, "---", "",
             f"# {name}" + (f" on {shown}" if shown else ""), "",
             f"- Method: `{method}` (genae-lightning {config['genae_lightning_version']})",
             f"- Paper: {paper or BASELINE}",
             f"- Dataset: {shown or 'not recorded'}",
             "- Post-hoc priors: " + (", ".join(f"`{p}`" for p in priors)
                                       or "none (fit them with `FitLatentPrior`)"),
             f"- Weights: `{WEIGHTS_NAME}`; the whole config: `{CONFIG_NAME}`", ""]
    metrics = config.get("metrics") or {}
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.4g} |" if isinstance(v, float) else f"| `{k}` | {v} |"
                  for k, v in metrics.items()]
    else:
        lines += ["## Metrics", "", "None recorded with this model."]
    lines += ["", "## Use", "", "```python", *_usage(config), "```", "",
              "## Hyperparameters", "", "```json",
              json.dumps(config["model"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# loading


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as err:
        raise ImportError(
            "Hugging Face Hub transfers need the optional package huggingface_hub, which is not "
            "installed; install it with `pip install \"genae-lightning[hub]\"` (or use a local "
            "folder)"
        ) from err
    return huggingface_hub


def _local_folder(given: str | Path) -> Path | None:
    """``given`` as a local folder; None when it can only be a Hub id ``user/name``.

    Raises:
        NotADirectoryError: It is a file (a checkpoint: use ``load_method``).
        FileNotFoundError: It looks like a local path (absolute, ``./``, ``~``, more than one
            ``/``, or its parent folder exists) but no such folder exists.
    """
    path = Path(given).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(
            f"from_pretrained({str(given)!r}): that is a file, not a folder; from_pretrained takes "
            "the folder save_pretrained wrote (for a .ckpt file use genae_lightning.load_method)")
    text = str(given)
    local = (path.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1
             or (path.parent != Path(".") and path.parent.is_dir()))
    if local:
        near = difflib.get_close_matches(path.name, [p.name for p in path.parent.glob("*")
                                                     if p.is_dir()] if path.parent.is_dir()
                                         else [], n=3)
        raise FileNotFoundError(
            f"from_pretrained({text!r}): no such folder"
            + (f" (did you mean {', '.join(str(path.parent / n) for n in near)}?)" if near
               else "")
            + "; expected a folder written by save_pretrained, or a Hugging Face Hub id "
            "'user/name'")
    return None


def read_config(config_file: Path) -> dict[str, Any]:
    """A pretrained folder's ``config.json``, checked to be a JSON object of a known format."""
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(config_file)!r} is not valid JSON ({err}): the folder's "
                         f"{CONFIG_NAME} was damaged; save the model again") from err
    if not isinstance(config, dict):
        raise ValueError(f"{str(config_file)!r} holds a JSON {type(config).__name__}, expected "
                         f"the object save_pretrained writes; save the model again")
    if config.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{str(config_file)!r} has format {config.get('format')!r}; this "
                         f"genae-lightning reads formats {', '.join(map(str, READABLE_FORMATS))}")
    return config


def read_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The tensors of a ``model.safetensors`` (no pickle: a damaged file is named as such)."""
    try:
        return safetensors.torch.load_file(path, device=str(torch.device(map_location)))
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpointError(
            f"{str(path)!r} is not a readable safetensors file ({type(err).__name__}: "
            f"{str(err)[:200]}): it was cut off or damaged in a copy; save or download the "
            "model again") from err


def _mapping(config: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {key} must be a JSON object, got {type(value).__name__}; "
                         "the file was edited or damaged: save the model again")
    return value


def _check_posthoc(priors: dict[str, Any], state: Mapping[str, Tensor], where: str) -> None:
    """The post-hoc priors config.json lists are the known ones, with tensors in the weights."""
    in_weights = {key[len(POSTHOC_PREFIX):].split(".", 1)[0] for key in state
                  if key.startswith(POSTHOC_PREFIX)}
    for name, entry in priors.items():
        expected = class_path(POSTHOC_PRIORS[name]) if name in POSTHOC_PRIORS else None
        if expected is None or not isinstance(entry, dict) or \
                entry.get("class_path") != expected:
            known = ", ".join(f"{k}: {class_path(v)}" for k, v in sorted(POSTHOC_PRIORS.items()))
            raise ValueError(
                f"{where}: posthoc_priors.{name} is not a post-hoc prior genae-lightning fits "
                f"(known: {known}); the file was edited or damaged: save the model again")
    if set(priors) != in_weights:
        raise ValueError(
            f"{where}: lists the post-hoc priors {sorted(priors)} but {WEIGHTS_NAME} holds "
            f"tensors of {sorted(in_weights)}; the folder's files do not belong together: save "
            "the model again")


def checkpoint_from_config(config: dict[str, Any], state: dict[str, Tensor],
                           where: str) -> dict[str, Any]:
    """A format-2 folder's config and weights as the checkpoint dictionary methods load from.

    The method, its init and the priors are checked (and looked up) by the same code that loads
    a ``genae fit`` checkpoint: :meth:`CheckpointedModule.from_checkpoint_dict`.
    """
    model = config.get("model")
    if not is_class_config(model) or not isinstance(model.get("init_args") or {}, dict):
        raise ValueError(f"{where}: model must be a JSON object {{\"class_path\": ..., "
                         "\"init_args\": {...}}; the file was edited or damaged: save the model "
                         "again")
    priors = _mapping(config, "posthoc_priors", where)
    _check_posthoc(priors, state, where)
    genae: dict[str, Any] = {"method": model["class_path"],
                             "version": str(config.get("genae_lightning_version", "0.0.0")),
                             "posthoc_priors": sorted(priors)}
    networks = _mapping(config, "custom_networks", where)
    if networks:
        genae["custom_networks"] = networks
    batchnorm = _mapping(config, "batchnorm", where)
    if batchnorm:
        genae["batchnorm"] = batchnorm
    checkpoint = {"state_dict": state, "hyper_parameters": dict(model.get("init_args") or {}),
                  "genae": genae}
    check_structure(checkpoint, where)
    return checkpoint


def _needs_networks(config: dict[str, Any], folder: Path, given: Mapping[str, Any]) -> None:
    """Say how to load a model built with your own modules when they were not passed again."""
    networks = config.get("custom_networks")
    missing = [name for name in ("encoder", "decoder") if given.get(name) is None]
    if isinstance(networks, dict) and networks and missing:
        raise ValueError(
            f"{str(folder)!r} holds a model built with your own encoder "
            f"({networks.get('encoder')}) and decoder ({networks.get('decoder')}), which the "
            f"folder does not contain, and no {' or '.join(missing)}= was given: pass them "
            f"again, from_pretrained({str(folder)!r}, encoder=MyEncoder(...), "
            "decoder=MyDecoder(...)) (built as for training; the weights come from the folder)")


def read_folder(folder: Path, map_location: str | torch.device = "cpu",
                **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A pretrained folder's config, its checkpoint dictionary, and the file to name in errors.

    Format 2 reads ``config.json`` and ``model.safetensors`` (no pickle); format 1 reads
    ``model.pt`` weights-only. ``kwargs`` are the modules the caller passes again.
    """
    config_file = folder / CONFIG_NAME
    config = read_config(config_file) if config_file.is_file() else None
    weights = folder / (LEGACY_WEIGHTS_NAME if config and config["format"] == 1
                        else WEIGHTS_NAME)
    if config is None or not weights.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} is not a pretrained genae-lightning folder: expected {CONFIG_NAME} "
            f"and {weights.name} (written by save_pretrained) in it")
    if config["format"] == 1:
        return config, read_checkpoint(weights, map_location=map_location), str(weights)
    _needs_networks(config, folder, kwargs)
    where = str(config_file)
    state = read_weights(weights, map_location)
    return config, checkpoint_from_config(config, state, where), where


def from_pretrained(
    folder_or_hub_id: str | Path,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    trusted: Iterable[type] = (),
    **kwargs: Any,
) -> CheckpointedModule:
    """Load a method saved by :func:`save_pretrained`, from a folder or a Hugging Face Hub repo.

    Nothing is unpickled and nothing the folder names is imported: the weights are safetensors,
    and the classes in ``config.json`` are looked up in the allow-list of
    :mod:`genae_lightning.trust`. (A folder of format 1 is read weights-only.)

    Args:
        folder_or_hub_id: A local folder, or a Hub repo id (``"user/name"``) when no such folder
            exists.
        map_location: Where to put the weights.
        revision: Hub revision (branch, tag, commit); Hub ids only.
        cache_dir: Hub download cache; Hub ids only.
        trusted: Your own classes the folder may name (your backbone, prior, method subclass).
        **kwargs: Your own ``encoder=`` and ``decoder=`` modules, for a model built with them
            (fresh modules of the same architecture: the folder's weights are loaded into them).

    Returns:
        The method with its weights and post-hoc priors, in eval mode.
    """
    folder = _local_folder(folder_or_hub_id)
    if folder is None:
        folder = Path(_hub().snapshot_download(
            repo_id=str(folder_or_hub_id), revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        ))
    config, checkpoint, where = read_folder(folder, map_location, **kwargs)
    model = method_from_checkpoint(checkpoint, where, trusted=trusted, **kwargs)
    named = (config.get("model") or {}).get("class_path") if config["format"] > 1 \
        else config.get("method")
    if _method_path(model) != named:
        raise ValueError(f"{str(folder)!r}: {CONFIG_NAME} names {named!r} but its weights hold "
                         f"{_method_path(model)}; save the folder again")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# the Hub


def push_to_hub(
    model: CheckpointedModule,
    repo_id: str,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload genae-lightning model",
    license: str | None = None,
) -> str:
    """Save ``model`` as a pretrained folder and upload it to the Hugging Face Hub repo ``repo_id``.

    Args:
        model: The method to share.
        repo_id: The Hub repo, ``"user/name"`` (created when missing).
        dataset: The training dataset's name, for the card.
        metrics: Measured metrics, for the card.
        private: Create the repo private.
        token: A Hub token (default: the one `hf auth login` stored).
        commit_message: The commit message of the upload.
        license: The license of the weights, for the card.

    Returns:
        The URL of the commit (as ``huggingface_hub.HfApi.upload_folder`` returns it).
    """
    hub = _hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, dataset=dataset, metrics=metrics, license=license)
        return str(api.upload_folder(folder_path=tmp, repo_id=repo_id,
                                     commit_message=commit_message))


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` as methods of a method class.

    Every :class:`~genae_lightning.methods.GenerativeAutoencoder` has them:
    ``model.save_pretrained(folder)``, and ``AE.from_pretrained(folder)`` also checks that the
    folder holds an ``AE``.
    """

    def save_pretrained(self, folder: str | Path, dataset: str | None = None,
                        metrics: dict[str, float] | None = None, **kwargs: Any) -> Path:
        """Write this method to ``folder`` (see :func:`save_pretrained` for the arguments)."""
        return save_pretrained(self, folder, dataset=dataset, metrics=metrics,  # type: ignore[arg-type]
                               **kwargs)

    @classmethod
    def from_pretrained(cls, folder_or_hub_id: str | Path, **kwargs: Any) -> Any:
        """Load a method of this class (see :func:`from_pretrained` for the arguments)."""
        model = from_pretrained(folder_or_hub_id, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(
                f"{cls.__name__}.from_pretrained({str(folder_or_hub_id)!r}): the folder holds a "
                f"{type(model).__name__}, not a {cls.__name__}; load it with "
                f"{type(model).__name__}.from_pretrained or "
                "genae_lightning.checkpoints.pretrained.from_pretrained"
            )
        return model

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this method to the Hub (see :func:`push_to_hub` for the arguments)."""
        return push_to_hub(self, repo_id, **kwargs)  # type: ignore[arg-type]
