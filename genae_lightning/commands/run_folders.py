"""A checkpoint's run: where the jobs on it write, and the W&B name and group they take.

A ``genae fit`` run keeps everything in one folder, ``<log dir>/`` (``config.yaml``,
``metrics.csv``, the grids, ``checkpoints/*.ckpt``). The jobs that read one of its checkpoints
write there too, never into a new ``version_<n>/``, and their W&B runs carry the training run's
name and group, with their own ``job_type``.
"""

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from genae_lightning.commands.checkpoints import run_config
from genae_lightning.commands.config_files import last_config_origin, read_yaml
from genae_lightning.loggers import JOB_TYPES, RunIdentity, saved_run_identity


def checkpoint_run_folder(ckpt_path: str | Path) -> Path:
    """The run folder of a checkpoint: the folder above its ``checkpoints/``.

    A checkpoint elsewhere belongs to the folder of the ``config.yaml`` beside it or one up
    (:func:`~genae_lightning.commands.checkpoints.run_config`), else to its own folder.
    """
    ckpt = Path(ckpt_path)
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent
    config = run_config(ckpt)
    return config.parent if config is not None else ckpt.parent


def training_run(ckpt_path: str | Path | None) -> RunIdentity | None:
    """The W&B name and group of the run that wrote a checkpoint (None without its config)."""
    if not ckpt_path or str(ckpt_path) in ("best", "last", "hpc"):
        return None
    config = run_config(Path(ckpt_path))
    saved = read_yaml(config) if config is not None else None
    return saved_run_identity(saved) if isinstance(saved, dict) else None


def run_description(subcommand: str, ckpt_path: str | Path | None = None) -> dict[str, Any]:
    """How the W&B runs of a LightningCLI subcommand are named (``describe_runs``' keywords).

    ``fit`` is named from its command line (:func:`last_config_origin`); ``validate``, ``test``
    and ``predict`` on a checkpoint take the training run's name and group.
    """
    if subcommand == "fit":
        return {"job_type": JOB_TYPES["fit"], "origin": last_config_origin()}
    training = training_run(ckpt_path)
    return {"job_type": JOB_TYPES.get(subcommand, subcommand),
            "origin": None if training is not None else last_config_origin(),
            "training": training}


def write_into_run_folder(trainer: L.Trainer) -> None:
    """Keep a job on a checkpoint out of new run folders: it writes into the checkpoint's own.

    Drops the loggers that open a ``version_<n>/`` folder of their own (CSV, TensorBoard; a
    prediction logs no metrics) and skips LightningCLI's config saving, which would write into
    such a folder (the run folder's ``config.yaml`` stays the training's). W&B loggers stay.
    """
    trainer.loggers = [logger for logger in trainer.loggers
                       if not isinstance(logger, CSVLogger | TensorBoardLogger)]
    for callback in trainer.callbacks:
        if isinstance(callback, SaveConfigCallback):
            callback.already_saved = True
