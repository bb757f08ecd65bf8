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

import json
from pathlib import Path
from typing import Any

import torch

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
) -> Path:
    """Write ``model`` (weights, hyperparameters, post-hoc priors) and its model card to a folder.

    Args:
        model: A genae-lightning method, e.g. after ``trainer.fit`` with ``FitLatentPrior``.
        folder: The folder to write (created; existing files of the format are replaced).
        dataset: The training dataset's name, for the card (e.g. ``"MNIST"``).
        metrics: Measured metrics for the card, e.g. ``{"fid/gmm": 12.3, "knn/acc": 0.97}``.

    Returns:
        The folder.
    """
    if not isinstance(model, CheckpointedModule):
        raise TypeError(f"save_pretrained expects a genae_lightning method (a "
                        f"CheckpointedModule), got {type(model).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint: dict[str, Any] = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "hyper_parameters": dict(model.hparams),
    }
    model.on_save_checkpoint(checkpoint)  # the "genae" entry: method, version, post-hoc priors
    torch.save(checkpoint, folder / WEIGHTS_NAME)
    config = {
        "format": FORMAT_VERSION,
        "method": _method_path(model),
        "genae_lightning_version": checkpoint["genae"]["version"],
        "hyper_parameters": plain(dict(model.hparams)),
        "posthoc_priors": checkpoint["genae"]["posthoc_priors"],
        "dataset": dataset,
        "metrics": dict(metrics or {}),
        "weights": WEIGHTS_NAME,
    }
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    (folder / CARD_NAME).write_text(model_card(config))
    return folder


def model_card(config: dict[str, Any]) -> str:
    """The ``README.md`` of a pretrained folder (Hugging Face model card) from its config."""
    name = str(config["method"]).rsplit(".", 1)[-1]
    dataset = config.get("dataset")
    paper = PAPERS.get(name, "a baseline of genae-lightning (docs/methods/baselines.md)")
    tags = ["genae-lightning", "generative-autoencoder", name] + ([dataset] if dataset else [])
    lines = ["---", "library_name: genae-lightning", "tags:"]
    lines += [f"- {t}" for t in tags]
    lines += ["---", "", f"# {name}" + (f" on {dataset}" if dataset else ""), "",
              f"- Method: `{config['method']}` (genae-lightning "
              f"{config['genae_lightning_version']})",
              f"- Paper: {paper}",
              f"- Dataset: {dataset or 'not recorded'}",
              "- Post-hoc priors: " + (", ".join(f"`{p}`" for p in config["posthoc_priors"])
                                       or "none (fit them with `FitLatentPrior`)"), ""]
    metrics = config.get("metrics") or {}
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


def from_pretrained(
    folder_or_hub_id: str | Path,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> CheckpointedModule:
    """Load a method saved by :func:`save_pretrained`, from a folder or a Hugging Face Hub repo.

    Args:
        folder_or_hub_id: A local folder, or a Hub repo id (``"user/name"``) when no such folder
            exists.
        map_location: Where to put the weights.
        revision: Hub revision (branch, tag, commit); Hub ids only.
        cache_dir: Hub download cache; Hub ids only.

    Returns:
        The method with its weights and post-hoc priors, in eval mode.
    """
    folder = Path(folder_or_hub_id).expanduser()
    if not folder.is_dir():
        if str(folder_or_hub_id).count("/") != 1 or Path(folder_or_hub_id).is_absolute():
            raise FileNotFoundError(
                f"from_pretrained({str(folder_or_hub_id)!r}): expected a folder written by "
                "save_pretrained or a Hugging Face Hub id 'user/name', got neither"
            )
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
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT_VERSION:
        raise ValueError(f"{str(config_file)!r} has format {config.get('format')!r}; this "
                         f"genae-lightning reads format {FORMAT_VERSION}")
    weights = folder / WEIGHTS_NAME
    checkpoint = read_checkpoint(weights, map_location=map_location)
    model = method_from_checkpoint(checkpoint, str(weights))
    if _method_path(model) != config["method"]:
        raise ValueError(f"{str(folder)!r}: {CONFIG_NAME} names {config['method']} but "
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
    import tempfile

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
                        metrics: dict[str, float] | None = None) -> Path:
        """Write this method to ``folder`` (see :func:`save_pretrained`)."""
        return save_pretrained(self, folder, dataset=dataset, metrics=metrics)  # type: ignore[arg-type]

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
