"""W&B logging that never blocks on a missing login and tags runs by method and dataset."""

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn


def has_wandb_credentials() -> bool:
    """Whether a W&B API key is configured (``WANDB_API_KEY`` or ``wandb login``'s netrc entry).

    Reads only the environment and the netrc file; never touches the network.
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host or "api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_offline(offline: bool | None, save_dir: str) -> bool:
    """Decide whether a run logs offline; ``None`` means: online only if a key is configured.

    ``WANDB_MODE`` in the environment wins (W&B reads it itself). Going offline because no key
    is configured is announced with a warning: never silently.
    """
    if offline is not None or os.environ.get("WANDB_MODE"):
        return bool(offline)
    if has_wandb_credentials():
        return False
    rank_zero_warn(
        "GenaeWandbLogger: no W&B API key found (WANDB_API_KEY, or `wandb login`, which writes "
        f"~/.netrc), so this run logs OFFLINE to {Path(save_dir).resolve() / 'wandb'}. Upload it "
        "later with `wandb sync <that folder>/offline-run-*`, or run `wandb login` first to log "
        "online. Set the logger's `offline: true` (or WANDB_MODE=offline) to silence this warning."
    )
    return True


class GenaeCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``save_dir`` may be left out, so that a run follows its root folder.

    Under ``genae fit`` a missing ``save_dir`` becomes ``trainer.default_root_dir``
    (:func:`genae_lightning.commands.config_files.fill_logger_dirs`); elsewhere, the working
    directory.

    Args:
        save_dir: Folder of the logs (``<save_dir>/<name>/version_<n>/metrics.csv``).
        name: Experiment name: the subfolder of ``save_dir``.
        version: Version folder (the next free one when None).
        prefix: Prefix of the metric keys.
        flush_logs_every_n_steps: How often the metrics are written to disk.
    """

    def __init__(
        self,
        save_dir: str | None = None,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(
            "." if save_dir is None else save_dir, name=name, version=version, prefix=prefix,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )


class GenaeWandbLogger(WandbLogger):
    """``WandbLogger`` for genae runs: safe without a login, grouped by dataset, tagged by method.

    - Without an API key the run goes offline with a warning (see :func:`resolve_offline`)
      instead of prompting for a login or failing; ``WANDB_MODE`` in the environment wins.
    - ``group`` defaults to the dataset and ``tags`` get the method and the dataset, filled in by
      :meth:`describe_run` (the ``genae`` CLI calls it before fit/validate/test), so one
      dashboard filtered by group compares methods on a dataset.
    - The run is finished when the Trainer finishes, so the next ``fit`` in the same process
      starts its own run; a later ``trainer.test`` resumes this one by id.

    Args:
        project: W&B project.
        name: Run display name (W&B picks one when None).
        save_dir: Folder under which W&B writes ``wandb/``; None: the trainer's
            ``default_root_dir`` under ``genae fit``, else the working directory.
        offline: True/False to force; None: online only if an API key is configured.
        group: W&B group; the dataset's name when None.
        tags: Extra W&B tags; the method and dataset names are added.
        log_model: Upload checkpoints as W&B artifacts (online only).
        **kwargs: Passed on to ``WandbLogger`` (and ``wandb.init``), e.g. ``entity``, ``notes``.
    """

    def __init__(
        self,
        project: str = "genae-lightning",
        name: str | None = None,
        save_dir: str | None = None,
        offline: bool | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        log_model: bool = False,
        **kwargs: object,
    ) -> None:
        save_dir = "." if save_dir is None else save_dir
        super().__init__(
            name=name, save_dir=save_dir, offline=resolve_offline(offline, save_dir),
            project=project, log_model=log_model, group=group, tags=list(tags or []), **kwargs,
        )

    def describe_run(self, method: str, dataset: str) -> None:
        """Set group (unless given) to ``dataset`` and add ``method`` and ``dataset`` to the tags.

        Must run before the W&B run starts (before ``Trainer.fit``); later calls change nothing.
        """
        if self._experiment is not None:
            return
        init = self._wandb_init
        init["group"] = init.get("group") or dataset
        init["tags"] = list(dict.fromkeys([*(init.get("tags") or []), method, dataset]))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log checkpoints (if asked), then finish the W&B run."""
        super().finalize(status)
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._id = self._wandb_init["id"] = self._experiment.id
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None


def describe_runs(trainer: L.Trainer, model: L.LightningModule, datamodule: object) -> None:
    """Give every :class:`GenaeWandbLogger` of ``trainer`` the method and dataset names."""
    for logger in trainer.loggers:
        if isinstance(logger, GenaeWandbLogger):
            logger.describe_run(type(model).__name__, type(datamodule).__name__)
