"""W&B logging that never blocks on a missing login and makes runs comparable by method.

Every run's W&B config holds the whole resolved ``genae fit`` config (nested as in the YAML) and
the flat keys ``method``, ``dataset``, ``seed`` and ``fid_feature``, so the W&B UI can group and
filter runs by method, by dataset and by FID feature extractor. Runs are named after their
config and the settings the command line changed (:func:`config_run_name`), and say which job
they are (``job_type``: train, validate, test, predict).
"""

import csv
import hashlib
import netrc
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import lightning as L
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from genae_lightning.checkpoints.reading import plain


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


class ResumingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it keeps an earlier run's rows in the same folder.

    Lightning's writer deletes an existing ``metrics.csv``. A run resumed into its own folder
    (a study's trial after a kill or a preemption, or ``--trainer.logger.version`` named) would
    lose its curve before the resume. This writer leaves the file until its first save, then
    keeps the earlier rows whose step is before the first step this process logs: the rows from
    that step on were logged after the checkpoint it resumed from, and are trained again. A run
    started from scratch into a used folder logs from step 0, so the old rows all go, as before.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._earlier = self._fs.isfile(self.metrics_file_path)

    def _check_log_dir_exists(self) -> None:
        """Keep ``metrics.csv``: :meth:`save` trims it (Lightning's writer deletes it here)."""

    def save(self) -> None:
        """Trim the earlier rows to before this process's first step once, then append."""
        if self._earlier and self.metrics:
            self._earlier = False
            first = min(m["step"] for m in self.metrics)
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                reader = csv.DictReader(file)
                rows = [r for r in reader if _step(r) is not None and _step(r) < first]
                self.metrics_keys = sorted(set(self.metrics_keys) | set(reader.fieldnames or []))
            partial = self.metrics_file_path + ".partial"
            with self._fs.open(partial, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(rows)
            self._fs.mv(partial, self.metrics_file_path)  # whole or not at all
        super().save()


def _step(row: dict[str, str]) -> float | None:
    try:
        return float(row.get("step") or "")
    except ValueError:
        return None


class GenaeCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``save_dir`` may be left out, so that a run follows its root folder.

    Under ``genae fit`` a missing ``save_dir`` becomes ``trainer.default_root_dir``
    (:func:`genae_lightning.commands.config_files.fill_logger_dirs`); elsewhere, the working
    directory. A run resumed into its own folder keeps its curve before the resume
    (:class:`ResumingExperimentWriter`).

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

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (a :class:`ResumingExperimentWriter`), created on first use."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class GenaeWandbLogger(WandbLogger):
    """``WandbLogger`` for genae runs: safe without a login, comparable across methods.

    - Without an API key the run goes offline with a warning (see :func:`resolve_offline`)
      instead of prompting for a login or failing; ``WANDB_MODE`` in the environment wins.
    - :meth:`describe_run` (the ``genae`` CLI calls it through :func:`describe_runs` before
      fit/validate/test) fills in what W&B dashboards group by: the run config (the whole
      resolved ``genae`` config, nested as in the YAML, plus the flat keys ``method``,
      ``dataset``, ``seed`` and ``fid_feature``), the run name (:func:`config_run_name`, e.g.
      ``injflow_mnist-lr=0.002-s0``; ``<method>-<dataset>[-s<seed>]`` without a config name),
      the group (the config's name, e.g. ``injflow_mnist``, set by the config composition; the
      dataset when none is given), the ``job_type`` and the tags ``<method>``, ``<dataset>``.
    - The run is finished when the Trainer finishes, so the next ``fit`` in the same process
      starts its own run; a later ``trainer.test`` resumes this one by id.

    Args:
        project: W&B project.
        name: Run display name; None: named by :meth:`describe_run` (``<method>-<dataset>``,
            ``-s<seed>`` when seeded, without one).
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
        if self._wandb_init.get("anonymous") is None:  # wandb 0.31 warns about any value
            self._wandb_init.pop("anonymous", None)

    def describe_run(
        self,
        method: str,
        dataset: str,
        config: Mapping[str, Any] | None = None,
        seed: int | None = None,
        fid_feature: str | None = None,
        name: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
    ) -> None:
        """Fill in the run config, name, group, job type and tags that W&B dashboards group by.

        Sets the name (unless the logger has one) to ``name``, else to ``<method>-<dataset>``
        plus ``-s<seed>`` when ``seed`` is set; the group to ``group`` when given, else (unless
        the logger has one) to ``dataset``; the job type (unless the logger has one) to
        ``job_type``; adds ``method`` and ``dataset`` to the tags, and makes the W&B run config
        ``config`` (nested) plus the flat keys ``method``, ``dataset``, ``seed`` and
        ``fid_feature``. Keys the logger's own ``config`` holds win over both (a study's trial
        gives ``method: beta_vae``, its label, where the class name would be ``VAE``), so the
        runs table groups by what the caller named. Must run before the W&B run starts (before
        ``Trainer.fit``); later calls change nothing.

        Args:
            method: The method's class name, e.g. ``InjFlow``.
            dataset: The DataModule's class name, e.g. ``MNIST``.
            config: The run's whole resolved config (``genae fit`` passes its parsed config).
            seed: The global seed (``seed_everything``), None when unseeded.
            fid_feature: The FID feature extractor of the run's ``GenerativeMetrics``.
            name: The run's name (e.g. from :func:`config_run_name`, or the training run's name
                for a job on its checkpoint); a name the logger was given wins.
            group: The group, e.g. the training run's for a job on its checkpoint; wins over
                the logger's own, so that the jobs of one training run are grouped with it.
            job_type: ``train``, ``validate``, ``test`` or ``predict`` (:data:`JOB_TYPES`).
        """
        if self._experiment is not None:
            return
        init = self._wandb_init
        init["group"] = group or init.get("group") or dataset
        init["tags"] = list(dict.fromkeys([*(init.get("tags") or []), method, dataset]))
        if not init.get("name"):
            init["name"] = self._name = name or run_name(method, dataset, seed)
        if job_type and not init.get("job_type"):
            init["job_type"] = job_type
        flat = {"method": method, "dataset": dataset, "seed": seed, "fid_feature": fid_feature}
        init["config"] = {**plain(config or {}), **flat, **dict(init.get("config") or {})}
        # Lightning later logs the model's and data's hyperparameters flat (e.g. the data's split
        # `seed`): they must not overwrite these keys, which the nested config already holds.
        self._described_keys = set(init["config"]) - {"fid_feature"}

    @property
    def display_name(self) -> str | None:
        """The W&B run's name (``name`` is the W&B project, as in ``WandbLogger``)."""
        return self._wandb_init.get("name") or None

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


# The W&B job type of each LightningCLI subcommand.
JOB_TYPES: dict[str, str] = {"fit": "train", "validate": "validate", "test": "test",
                             "predict": "predict"}
# Trainer settings that change what a run trains, so that overriding them names the run.
TRAINER_SETTINGS = frozenset({"max_steps", "max_epochs", "accumulate_grad_batches",
                              "gradient_clip_val", "precision"})
# Data settings that say where the data is or how it is loaded: they never name a run.
DATA_LOCATIONS = frozenset({"root", "download", "num_workers", "pin_memory",
                            "persistent_workers", "cache_dir"})
MAX_NAME_LENGTH = 96  # longer names keep their first settings and a hash of the rest
_PATH_STEPS = frozenset({"init_args", "class_path", "dict_kwargs"})


@dataclass(frozen=True)
class ConfigOrigin:
    """What a ``genae`` command line set: the named config, then what it changed on top.

    Attributes:
        name: The config's name: the stem of the first ``--config`` file (``injflow_mnist``);
            None for inline YAML and for a run's saved ``config.yaml``.
        overrides: ``(dotted key, value)`` of every setting given after that config, on the
            command line (the value as typed) or by a further ``--config`` file, in order.
    """

    name: str | None
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RunIdentity:
    """The W&B name and group of a training run, as its saved ``config.yaml`` records them.

    Attributes:
        name: The run's name (None for runs saved before names were recorded: jobs on their
            checkpoints then get ``<method>-<dataset>-s<seed>``, the name those runs had).
        group: The run's group (None when it logged to no W&B group).
    """

    name: str | None
    group: str | None


def setting_path(key: str) -> tuple[str, ...]:
    """A dotted config key without its ``init_args`` / ``class_path`` steps.

    >>> setting_path("model.init_args.optimizer.init_args.lr")
    ('model', 'optimizer', 'lr')
    """
    return tuple(part for part in key.split(".") if part and part not in _PATH_STEPS)


def names_the_run(path: Sequence[str]) -> bool:
    """Whether overriding the setting at ``path`` changes what is trained, so it names the run.

    Every model (and optimizer) setting and the data's class and settings do, except where the
    data lives and how it is loaded (:data:`DATA_LOCATIONS`); of the trainer, only the budget
    and the numerics (:data:`TRAINER_SETTINGS`). Folders, loggers, callbacks, devices, progress
    bars and ``fid_feature`` never do; the seed is the name's ``-s<seed>``.
    """
    if not path:
        return False
    if path[0] in ("model", "optimizer", "lr_scheduler"):
        return True
    if path[0] == "data":
        return path[-1] not in DATA_LOCATIONS
    return path[0] == "trainer" and len(path) == 2 and path[1] in TRAINER_SETTINGS


def setting_value(config: Mapping[str, Any], path: Sequence[str]) -> tuple[bool, Any]:
    """``(found, value)`` of the setting at ``path`` in a plain config, through ``init_args``."""
    node: Any = config
    for part in path:
        if (isinstance(node, Mapping) and part not in node
                and isinstance(node.get("init_args"), Mapping)):
            node = node["init_args"]
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def format_value(value: Any) -> str:
    """A setting's value as a short, readable piece of a run name.

    >>> [format_value(v) for v in (0.001, 1e-05, 1.0, True, None, [1, 28, 28])]
    ['0.001', '1e-05', '1', 'true', 'null', '1,28,28']
    >>> format_value({"class_path": "genae_lightning.data.SyntheticImages"})
    'SyntheticImages'
    """
    if isinstance(value, Mapping):
        path = value.get("class_path")
        return format_value(str(path)) if path else "~" + _digest(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(format_value(item) for item in value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", text):  # a class path: its class
        return text.rsplit(".", 1)[-1]
    return text.rstrip("/").rsplit("/", 1)[-1]  # a file: its name


def _digest(value: Any) -> str:
    """Six hex digits that tell values apart."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:6]


def _labels(paths: Sequence[tuple[str, ...]]) -> list[str]:
    """The shortest unambiguous label of each setting: its last key, more where two share it."""
    labels = [path[-1] for path in paths]
    for depth in (2, len(max(paths, key=len, default=()))):
        if len(set(labels)) == len(labels):
            break
        labels = [".".join(path[-depth:]) if labels.count(label) > 1 else label
                  for path, label in zip(paths, labels, strict=True)]
    return labels


def run_settings(
    overrides: Sequence[tuple[str, Any]], config: Mapping[str, Any] | None = None
) -> list[tuple[str, Any]]:
    """The overridden settings that name a run (:func:`names_the_run`), each once.

    A setting given twice counts once, with the later value. The value is the one ``config``
    (the parsed config) resolved when it holds the key, so ``1e-3`` and ``0.001`` read alike;
    else the value as given (YAML-read when it is text).
    """
    chosen: dict[tuple[str, ...], Any] = {}
    for key, given in overrides:
        path = setting_path(key)
        if not names_the_run(path):
            continue
        found, value = setting_value(config, path) if config else (False, None)
        chosen.pop(path, None)  # the later one, in the later place
        chosen[path] = value if found else _read(given)
    return [(".".join(path), value) for path, value in chosen.items()]


def _read(given: Any) -> Any:
    """A value typed on the command line, read as YAML (``0.0010`` -> 0.001) where it can be."""
    if not isinstance(given, str):
        return given
    import yaml  # noqa: PLC0415  (only command lines need it)

    try:
        return yaml.safe_load(given)
    except yaml.YAMLError:
        return given


def config_run_name(
    config_name: str, settings: Sequence[tuple[str, Any]] = (), seed: int | None = None
) -> str:
    """A run's name: its config's name, the settings it overrode, and its seed.

    ``<config>[-<key>=<value>...][-s<seed>]``: each overridden setting (see
    :func:`run_settings`) by its last key (two keys where two settings share it), sorted.
    Past :data:`MAX_NAME_LENGTH` characters, the first settings are kept and the rest are
    counted and hashed (``-+3~1a2b3c``), so different settings still give different names.

    >>> config_run_name("injflow_ln_mnist", seed=0)
    'injflow_ln_mnist-s0'
    >>> config_run_name("injflow_mnist", [("model.init_args.optimizer.init_args.lr", 0.001)], 1)
    'injflow_mnist-lr=0.001-s1'
    """
    labels = _labels([setting_path(key) for key, _ in settings])
    parts = sorted(f"{label}={format_value(value)}"
                   for label, (_, value) in zip(labels, settings, strict=True))
    parts = [re.sub(r"[^\w.,=+~-]", "_", part, flags=re.ASCII) for part in parts]
    suffix = "" if seed is None else f"-s{seed}"
    name = "-".join([config_name, *parts]) + suffix
    if len(name) <= MAX_NAME_LENGTH:
        return name
    kept = [config_name]
    room = MAX_NAME_LENGTH - len(suffix) - len("-+99~123456")
    for part in parts:
        if len("-".join([*kept, part])) > room:
            break
        kept.append(part)
    rest = len(parts) - len(kept) + 1
    return "-".join([*kept, f"+{rest}~{_digest(parts)}"]) + suffix


def saved_run_identity(config: Mapping[str, Any]) -> RunIdentity:
    """The W&B name and group a saved run config (``config.yaml``) gives its W&B logger."""
    trainer = config.get("trainer")
    loggers = trainer.get("logger") if isinstance(trainer, Mapping) else None
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, Mapping) and str(logger.get("class_path")).endswith("WandbLogger"):
            init_args = logger.get("init_args")
            init_args = init_args if isinstance(init_args, Mapping) else {}
            name, group = init_args.get("name"), init_args.get("group")
            return RunIdentity(name if isinstance(name, str) and name else None,
                               group if isinstance(group, str) and group else None)
    return RunIdentity(None, None)


def keep_run_names(config: Any, trainer: L.Trainer) -> None:
    """Write the W&B loggers' run names into a parsed LightningCLI config that has none.

    So the run's saved ``config.yaml`` names its W&B run: jobs on its checkpoints (``genae
    predict``, ``evaluate``) log under that name, and a run restarted from that file keeps it.
    ``config`` is the CLI's parsed (not instantiated) config of one subcommand.
    """
    if not hasattr(config, "as_dict"):  # only LightningCLI's namespaces, never a user's dict
        return
    entries = config.get("trainer.logger") if "trainer.logger" in config else None
    entries = entries if isinstance(entries, list) else [entries]
    entries = [e for e in entries
               if str(getattr(e, "class_path", "")).endswith("WandbLogger")
               and getattr(e, "init_args", None) is not None]
    names = [logger.display_name for logger in trainer.loggers
             if isinstance(logger, GenaeWandbLogger)]
    for entry, name in zip(entries, names, strict=False):
        if entry.init_args.get("name") is None and name:
            entry.init_args.name = name


def describe_runs(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: object,
    config: Mapping[str, Any] | None = None,
    job_type: str | None = None,
    origin: ConfigOrigin | None = None,
    training: RunIdentity | None = None,
    fid_feature: str | None = None,
) -> None:
    """Describe the W&B runs of ``trainer``'s :class:`GenaeWandbLogger` (see its describe_run).

    The name: the training run's (``training``) for a job on its checkpoint; else, for a
    command line with a named config (``origin``), :func:`config_run_name` of that config, the
    settings the command line overrode and the seed; else ``<method>-<dataset>-s<seed>``. A
    name given to the logger always wins. The name is then written into ``config`` (a
    LightningCLI namespace), so the run's saved ``config.yaml`` records it.

    Args:
        trainer: The trainer whose loggers are described.
        model: The method (its class name is ``method``).
        datamodule: The DataModule (its class name is ``dataset``).
        config: The run's parsed config (LightningCLI's ``self.config[subcommand]``): logged
            whole; its ``seed_everything`` names the run.
        job_type: The W&B job type (:data:`JOB_TYPES`: ``train`` for fit).
        origin: The named config and the overrides of the command line, which name the run.
        training: The training run whose checkpoint this job reads: its name and group.
        fid_feature: The FID features of the run's ``GenerativeMetrics`` (``genae fit`` sets
            and names them: :func:`genae_lightning.commands.fit.apply_fid_feature`).
    """
    settings = plain(config) if config is not None else {}
    seed = settings.get("seed_everything")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    name = group = None
    if training is not None:
        name, group = training.name, training.group
    elif origin is not None and origin.name:
        name = config_run_name(origin.name, run_settings(origin.overrides, settings), seed)
    for logger in trainer.loggers:
        if isinstance(logger, GenaeWandbLogger):
            logger.describe_run(type(model).__name__, type(datamodule).__name__, settings, seed,
                                fid_feature, name=name, group=group, job_type=job_type)
    keep_run_names(config, trainer)
