"""Share trained methods as folders (and on the Hugging Face Hub), the way pythae users do.

A pretrained folder holds:

- ``config.json``: the method class, its hyperparameters (as plain data, for reading), the
  post-hoc priors, the dataset and metrics when known, and the genae-lightning version;
- ``model.pt``: the weights (post-hoc priors included) and hyperparameters as a checkpoint
  dictionary, read back weights-only through :func:`genae_lightning.checkpoint.read_checkpoint`
  (it cannot run code);
- ``README.md``: a generated model card (method, paper, dataset, priors, metrics, usage).

Usage::

    save_pretrained(model, "my-injflow", dataset="MNIST", metrics={"fid/gmm": 12.3})
    model = from_pretrained("my-injflow")  # or a Hub id: "user/my-injflow"

Hub transfers (:func:`push_to_hub`, and :func:`from_pretrained` with a Hub id) need the optional
``huggingface_hub`` package: ``pip install "genae-lightning[hub]"``.
"""

import difflib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch
import yaml

from genae_lightning.checkpoint import plain, read_checkpoint
from genae_lightning.methods.checkpointing import CheckpointedModule
from genae_lightning.methods.loading import method_from_checkpoint

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.pt"
CARD_NAME = "README.md"
FORMAT_VERSION = 1

# The paper behind each method class (docs/citing.md has the BibTeX); the others are baselines.
PAPERS = {
    "InjFlow": "Kumar, Poole & Murphy, *Regularized Autoencoders via Relaxed Injective "
               "Probability Flow*, AISTATS 2020",
    "LPGA": "Zhang, Zhang, Li, Bengio & Paull, *Perceptual Generative Autoencoders*, ICML 2020",
    "VPGA": "Zhang, Zhang, Li, Bengio & Paull, *Perceptual Generative Autoencoders*, ICML 2020",
    "SWAE": "Sun & Guo, *Symmetric Wasserstein Autoencoders*, 2021",
    "DPVAE": "Bhalodia, Lee & Elhabian, *dpVAEs: Fixing Sample Generation for Regularized VAEs*, "
             "ACCV 2020",
}


def _method_path(model: CheckpointedModule) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_pretrained(
    model: CheckpointedModule,
    folder: str | Path,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    overwrite: bool = False,
    license: str | None = None,
) -> Path:
    """Write ``model`` (weights, hyperparameters, post-hoc priors) and its model card to a folder.

    The save is atomic: every file is written to a temporary file in the folder first and renamed
    into place only when all were written, so a failed save (full disk, a value that cannot be
    serialised, an interrupt) leaves the folder's previous contents intact. Temporary files of an
    earlier save that was killed are removed. A file that genae-lightning did not write (your own
    ``README.md`` or ``config.json``) is only replaced with ``overwrite=True``, and a symlink never.

    Args:
        model: A genae-lightning method, e.g. after ``trainer.fit`` with ``FitLatentPrior``.
        folder: The folder to write (created when missing).
        dataset: The training dataset's name, for the card (e.g. ``"MNIST"``).
        metrics: Measured metrics for the card, e.g. ``{"fid/gmm": 12.3, "knn/acc": 0.97}``.
        overwrite: Replace files of these names that genae-lightning did not write.
        license: The license of the weights, for the card (e.g. ``"mit"``).

    Returns:
        The folder.
    """
    if not isinstance(model, CheckpointedModule):
        raise TypeError(f"save_pretrained expects a genae_lightning method (a "
                        f"CheckpointedModule), got {type(model).__name__}")
    for name, value in (("dataset", dataset), ("license", license)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"save_pretrained: {name} must be a string, got "
                            f"{type(value).__name__}")
    metrics = dict(metrics or {})
    for key, value in metrics.items():
        if not isinstance(key, str) or isinstance(value, bool) or \
                not isinstance(value, int | float):
            raise TypeError(f"save_pretrained: metrics must map names to numbers, got "
                            f"{key!r}: {value!r}")
    folder = Path(folder)
    checkpoint: dict[str, Any] = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hyper_parameters": dict(model.hparams),
    }
    model.on_save_checkpoint(checkpoint)  # the "genae" entry: method, version, post-hoc priors
    config = {
        "format": FORMAT_VERSION,
        "method": _method_path(model),
        "genae_lightning_version": checkpoint["genae"]["version"],
        "hyper_parameters": plain(dict(model.hparams)),
        "posthoc_priors": checkpoint["genae"]["posthoc_priors"],
        "dataset": dataset,
        "license": license,
        "metrics": metrics,
        "weights": WEIGHTS_NAME,
    }
    texts = {CONFIG_NAME: json.dumps(config, indent=2, sort_keys=True) + "\n",
             CARD_NAME: model_card(config)}
    folder.mkdir(parents=True, exist_ok=True)
    _check_targets(folder, overwrite)
    write_atomically(folder, {WEIGHTS_NAME: lambda f: torch.save(checkpoint, f),
                              **{name: _text_writer(text) for name, text in texts.items()}})
    return folder


def _text_writer(text: str) -> Callable[[IO[bytes]], None]:
    return lambda file: file.write(text.encode())


def _is_ours(path: Path) -> bool:
    """Whether ``path`` (an existing file) was written by save_pretrained."""
    try:
        head = path.read_bytes()[:4096].decode(errors="replace")
    except OSError:
        return False
    if path.name == CARD_NAME:
        return head.startswith("---\n") and "library_name: genae-lightning" in head
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
            with os.fdopen(handle, "wb") as file:
                writer(file)
                file.flush()
                os.fsync(file.fileno())
        for name, temp in temps.items():
            os.replace(temp, folder / name)
    finally:
        for temp in temps.values():
            Path(temp).unlink(missing_ok=True)


class _CardDumper(yaml.SafeDumper):
    """YAML for a card's front matter: a string with a line break is one double-quoted line."""


_CardDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text,
    style='"' if any(c in text for c in "\n\r\x85\u2028\u2029") else None))


def model_card(config: dict[str, Any]) -> str:
    """The ``README.md`` of a pretrained folder (Hugging Face model card) from its config.

    The YAML front matter is written with ``yaml.safe_dump``: every string is escaped, so it
    parses back to exactly the keys written.
    """
    name = str(config["method"]).rsplit(".", 1)[-1]
    dataset = config.get("dataset")
    paper = PAPERS.get(name, "a baseline of genae-lightning (docs/methods/baselines.md)")
    meta: dict[str, Any] = {"library_name": "genae-lightning",
                            "tags": ["genae-lightning", "generative-autoencoder", name]}
    if config.get("license"):
        meta["license"] = config["license"]
    if dataset:
        meta["datasets"] = [dataset]
    metrics = config.get("metrics") or {}
    if metrics:
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "unconditional-image-generation"},
            **({"dataset": {"name": dataset, "type": dataset}} if dataset else {}),
            "metrics": [{"type": k, "value": v} for k, v in metrics.items()]}]}]
    shown = " ".join(str(dataset).split()) if dataset else None  # one line in the text
    front = yaml.dump(meta, Dumper=_CardDumper, sort_keys=False, allow_unicode=True,
                      width=10**6).rstrip("\n")
    lines = ["---", front, "---", "",
             f"# {name}" + (f" on {shown}" if shown else ""), "",
             f"- Method: `{config['method']}` (genae-lightning "
             f"{config['genae_lightning_version']})",
             f"- Paper: {paper}",
             f"- Dataset: {shown or 'not recorded'}",
             "- Post-hoc priors: " + (", ".join(f"`{p}`" for p in config["posthoc_priors"])
                                       or "none (fit them with `FitLatentPrior`)"), ""]
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.4g} |" if isinstance(v, float) else f"| `{k}` | {v} |"
                  for k, v in metrics.items()]
    else:
        lines += ["## Metrics", "", "None recorded with this model."]
    prior = "gmm" if "gmm" in config["posthoc_priors"] else "standard"
    lines += ["", "## Use", "", "```python",
              "from genae_lightning import from_pretrained",
              "", 'model = from_pretrained("<this folder or Hub id>")',
              f'images = model.sample(16, prior="{prior}")', "```", "",
              "## Hyperparameters", "", "```json",
              json.dumps(config["hyper_parameters"], indent=2), "```", ""]
    return "\n".join(lines)


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
    """A pretrained folder's ``config.json``, checked to be a JSON object of this format."""
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(config_file)!r} is not valid JSON ({err}): the folder's "
                         f"{CONFIG_NAME} was damaged; save the model again") from err
    if not isinstance(config, dict):
        raise ValueError(f"{str(config_file)!r} holds a JSON {type(config).__name__}, expected "
                         f"the object save_pretrained writes; save the model again")
    if config.get("format") != FORMAT_VERSION:
        raise ValueError(f"{str(config_file)!r} has format {config.get('format')!r}; this "
                         f"genae-lightning reads format {FORMAT_VERSION}")
    return config


def from_pretrained(
    folder_or_hub_id: str | Path,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    trusted: Iterable[type] = (),
    **kwargs: Any,
) -> CheckpointedModule:
    """Load a method saved by :func:`save_pretrained`, from a folder or a Hugging Face Hub repo.

    Nothing the folder names is imported: its classes are looked up in the allow-list of
    :mod:`genae_lightning.trust`.

    Args:
        folder_or_hub_id: A local folder, or a Hub repo id (``"user/name"``) when no such folder
            exists.
        map_location: Where to put the weights.
        revision: Hub revision (branch, tag, commit); Hub ids only.
        cache_dir: Hub download cache; Hub ids only.
        trusted: Your own classes the folder may name (your backbone, prior, method subclass).
        **kwargs: Your own ``encoder=`` and ``decoder=`` modules, for a model built with them.

    Returns:
        The method with its weights and post-hoc priors, in eval mode.
    """
    folder = _local_folder(folder_or_hub_id)
    if folder is None:
        folder = Path(_hub().snapshot_download(
            repo_id=str(folder_or_hub_id), revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
        ))
    config_file = folder / CONFIG_NAME
    if not config_file.is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} is not a pretrained genae-lightning folder: expected {CONFIG_NAME} "
            f"and {WEIGHTS_NAME} (written by save_pretrained) in it"
        )
    config = read_config(config_file)
    weights = folder / WEIGHTS_NAME
    checkpoint = read_checkpoint(weights, map_location=map_location)
    model = method_from_checkpoint(checkpoint, str(weights), trusted=trusted, **kwargs)
    if _method_path(model) != config.get("method"):
        raise ValueError(f"{str(folder)!r}: {CONFIG_NAME} names {config.get('method')!r} but "
                         f"{WEIGHTS_NAME} holds {_method_path(model)}; save the folder again")
    return model.eval()


def push_to_hub(
    model: CheckpointedModule,
    repo_id: str,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload genae-lightning model",
) -> str:
    """Save ``model`` as a pretrained folder and upload it to the Hugging Face Hub repo ``repo_id``.

    Args:
        model: The method to share.
        repo_id: The Hub repo, ``"user/name"`` (created when missing).
        dataset: The training dataset's name, for the card.
        metrics: Measured metrics, for the card.
        private: Create the repo private.
        token: A Hub token (default: the one `huggingface-cli login` stored).
        commit_message: The commit message of the upload.

    Returns:
        The URL of the commit (as ``huggingface_hub.HfApi.upload_folder`` returns it).
    """
    hub = _hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, dataset=dataset, metrics=metrics)
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
                "genae_lightning.methods.pretrained.from_pretrained"
            )
        return model

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this method to the Hub (see :func:`push_to_hub` for the arguments)."""
        return push_to_hub(self, repo_id, **kwargs)  # type: ignore[arg-type]
