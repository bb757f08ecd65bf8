"""W&B logging that never blocks on a missing login and makes runs comparable by method.

Every run's W&B config holds the whole resolved ``genae fit`` config (nested as in the YAML) and
the flat keys ``method``, ``dataset``, ``seed`` and ``fid_feature``, so the W&B UI can group and
filter runs by method, by dataset and by FID feature extractor.
"""

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightning as L
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from genae_lightning.checkpoint import plain


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
    """``WandbLogger`` for genae runs: safe without a login, comparable across methods.

    - Without an API key the run goes offline with a warning (see :func:`resolve_offline`)
      instead of prompting for a login or failing; ``WANDB_MODE`` in the environment wins.
    - :meth:`describe_run` (the ``genae`` CLI calls it through :func:`describe_runs` before
      fit/validate/test) fills in what W&B dashboards group by: the run config (the whole
      resolved ``genae`` config, nested as in the YAML, plus the flat keys ``method``,
      ``dataset``, ``seed`` and ``fid_feature``), the run name ``<method>-<dataset>[-s<seed>]``,
      the group (the config's name, e.g. ``injflow_mnist``, set by the config composition; the
      dataset when none is given) and the tags ``<method>``, ``<dataset>``.
    - The run is finished when the Trainer finishes, so the next ``fit`` in the same process
      starts its own run; a later ``trainer.test`` resumes this one by id.

    Args:
        project: W&B project.
        name: Run display name; None: ``<method>-<dataset>`` (``-s<seed>`` when seeded).
        save_dir: Folder under which W&B writes ``wandb/``; None: the trainer's
            ``default_root_dir`` under ``genae fit``, else the working directory.
        offline: True/False to force; None: online only if an API key is configured.
        group: W&B group; ``genae fit --config <name>`` sets the config's name, and the
            dataset's name is used when it is None.
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

    def describe_run(
        self,
        method: str,
        dataset: str,
        config: Mapping[str, Any] | None = None,
        seed: int | None = None,
        fid_feature: str | None = None,
    ) -> None:
        """Fill in the run config, name, group and tags that W&B dashboards group by.

        Sets the group (unless given) to ``dataset``, the name (unless given) to
        ``<method>-<dataset>`` plus ``-s<seed>`` when ``seed`` is set, adds ``method`` and
        ``dataset`` to the tags, and makes the W&B run config ``config`` (nested) plus the flat
        keys ``method``, ``dataset``, ``seed`` and ``fid_feature``. Must run before the W&B run
        starts (before ``Trainer.fit``); later calls change nothing.

        Args:
            method: The method's class name, e.g. ``InjFlow``.
            dataset: The DataModule's class name, e.g. ``MNIST``.
            config: The run's whole resolved config (``genae fit`` passes its parsed config).
            seed: The global seed (``seed_everything``), None when unseeded.
            fid_feature: The FID feature extractor of the run's ``GenerativeMetrics``.
        """
        if self._experiment is not None:
            return
        init = self._wandb_init
        init["group"] = init.get("group") or dataset
        init["tags"] = list(dict.fromkeys([*(init.get("tags") or []), method, dataset]))
        if not init.get("name"):
            init["name"] = self._name = run_name(method, dataset, seed)
        flat = {"method": method, "dataset": dataset, "seed": seed, "fid_feature": fid_feature}
        init["config"] = {**plain(config or {}), **dict(init.get("config") or {}), **flat}
        # Lightning later logs the model's and data's hyperparameters flat (e.g. the data's split
        # `seed`): they must not overwrite these keys, which the nested config already holds.
        self._described_keys = set(init["config"]) - {"fid_feature"}

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """Log hyperparameters, except those that would overwrite :meth:`describe_run`'s keys."""
        params = _convert_params(params)
        keep = {k: v for k, v in params.items() if k not in getattr(self, "_described_keys", ())}
        if keep:
            super().log_hyperparams(keep)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Log checkpoints (if asked), then finish the W&B run."""
        super().finalize(status)
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._id = self._wandb_init["id"] = self._experiment.id
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None


def run_name(method: str, dataset: str, seed: int | None = None) -> str:
    """The default W&B run name: ``<method>-<dataset>``, plus ``-s<seed>`` for a seeded run.

    >>> run_name("InjFlow", "MNIST", 0)
    'InjFlow-MNIST-s0'
    """
    return f"{method}-{dataset}" + ("" if seed is None else f"-s{seed}")




def add_run_arguments(parser: Any) -> None:
    """Add ``--fid_feature`` to a ``genae`` LightningCLI parser (see :func:`describe_runs`)."""
    parser.add_argument(
        "--fid_feature", type=str | None, default=None,
        help="FID features of every GenerativeMetrics callback: 'inception', or the path of a "
             "`genae train-features` classifier (classifier FID, for machines without the "
             "Inception weights). Default: each callback's own `feature` setting.",
    )


def fid_features(trainer: L.Trainer, fid_feature: str | None = None) -> str | None:
    """Set (when given) and name the FID feature extractor of ``trainer``'s GenerativeMetrics.

    Returns:
        The extractor's name (``"inception"``, a classifier file, a module's class name), or
        None when the trainer has no ``GenerativeMetrics`` callback.

    Raises:
        FileNotFoundError: ``fid_feature`` is neither ``inception`` nor an existing file.
        ValueError: ``fid_feature`` is given but no callback computes FID.
    """
    from genae_lightning.callbacks import GenerativeMetrics
    from genae_lightning.features.extractors import check_feature_argument

    metrics = [c for c in trainer.callbacks if isinstance(c, GenerativeMetrics)]
    if fid_feature is not None:
        if not metrics:
            raise ValueError(
                f"--fid_feature {fid_feature!r} sets the FID features of the GenerativeMetrics "
                "callback, but this trainer has none; expected a config whose trainer part "
                "lists genae_lightning.callbacks.GenerativeMetrics (every paper config does), "
                "or drop --fid_feature"
            )
        check_feature_argument(fid_feature, "--fid_feature")
        for callback in metrics:
            callback.feature = fid_feature
    names = {c.feature if isinstance(c.feature, str) else type(c.feature).__name__
             for c in metrics}
    return ",".join(sorted(names)) or None


def describe_runs(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: object,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Describe the W&B runs of ``trainer``'s :class:`GenaeWandbLogger` (see its describe_run).

    Args:
        trainer: The trainer whose loggers are described.
        model: The method (its class name is ``method``).
        datamodule: The DataModule (its class name is ``dataset``).
        config: The run's parsed config (LightningCLI's ``self.config[subcommand]``): logged
            whole; its ``seed_everything`` names the run and its ``fid_feature`` (when set)
            becomes the feature of every ``GenerativeMetrics`` callback.
    """
    config = plain(config) if config is not None else {}
    seed = config.get("seed_everything")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    feature = fid_features(trainer, config.get("fid_feature"))
    for logger in trainer.loggers:
        if isinstance(logger, GenaeWandbLogger):
            logger.describe_run(type(model).__name__, type(datamodule).__name__, config, seed,
                                feature)
