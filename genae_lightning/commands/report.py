"""``genae report``: the papers' comparison table from evaluated runs (or their training logs).

Rows are methods, columns the InjFlow paper's FIDs (reconstructions, post-hoc Gaussian "N",
post-hoc GMM; plus the method's own prior) and SWAE's 5-NN accuracy and reconstruction loss.
FIDs of different feature extractors get separate columns: ``fid/*`` (Inception, "FID"),
``cfid/*`` (a classifier, "cFID"), ``fid_<id>/*`` (another module, "FID (<id>)").
Sources, per run directory given: the ``evaluation*.json`` files ``genae evaluate`` wrote; if
there are none, the last values logged by ``GenerativeMetrics`` in CSV logs (``metrics.csv``);
if there are none either, in offline W&B runs (``run-*.wandb``).

Runs of one config: each row names its run's config (the config's name, i.e. its W&B group or
CSV log name, plus the settings that tell it apart from the other runs of that name) and its seed
(``seed_everything``). A second table has one row per config, setting, dataset, step and FID
features: the number of runs n, their seeds, and each metric's mean ± sample sd (n - 1) over
them (the value alone when n = 1). Settings are the run's saved ``config.yaml`` (else its W&B run
config), and for evaluations also ``genae evaluate``'s settings; the seed, where files go
(folders, loggers) and progress output are not settings.
"""

import argparse
import csv
import io
import json
import math
import statistics
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genae_lightning.commands.config_files import read_yaml
from genae_lightning.metrics.fid import split_fid_key

# FID columns (title, kind), one set per FID feature family present: fid/<kind>, cfid/<kind>, ...
FID_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Rec.", "recon"), ("N", "gaussian"), ("GMM", "gmm"), ("Prior", "prior"),
)
FID_KINDS = tuple(kind for _, kind in FID_COLUMNS)
# (column title, metric key, number format) of the other columns
OTHER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("5-NN acc.", "knn/acc", ".4f"),
    ("Rec. SSE", "val/rec_sse", ".2f"),
)


def is_report_key(key: str) -> bool:
    """Whether a logged metric is a column of the report (an FID of any features, 5-NN, SSE)."""
    fid = split_fid_key(key)
    return (fid is not None and fid[1] in FID_KINDS) or key in {k for _, k, _ in OTHER_COLUMNS}


def _fid_title(prefix: str) -> str:
    """``fid`` -> ``FID``, ``cfid`` -> ``cFID`` (classifier FID), ``fid_<id>`` -> ``FID (<id>)``."""
    return {"fid": "FID", "cfid": "cFID"}.get(prefix, f"FID ({prefix.removeprefix('fid_')})")


def metric_columns(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(title, key, format) of the table's columns: FIDs per feature family, then the others.

    Each family of FID features gets its own columns (Inception ``fid/*`` first, then classifier
    ``cfid/*``, then other modules ``fid_<id>/*``), so one column never mixes extractors;
    Inception columns when no record has an FID.
    """
    found = {fid[0] for r in records for k in r.get("metrics", {})
             if (fid := split_fid_key(k)) is not None and fid[1] in FID_KINDS}
    prefixes = sorted(found or {"fid"}, key=lambda p: (p != "fid", p != "cfid", p))
    return [*((f"{title} {_fid_title(p)}", f"{p}/{kind}", ".2f") for p in prefixes
              for title, kind in FID_COLUMNS), *OTHER_COLUMNS]


def _number(value: Any, source: Path | str, key: str) -> float:
    """A logged metric as a float; anything else is an error naming the file and the key."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{source}: {key!r} is {value!r}, not a number; expected the values `genae fit` or "
            "`genae evaluate` log: fix or remove the file (or leave its run out of the report)"
        ) from None


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def _markdown(titles: list[str], rows: list[list[Any]]) -> str:
    """A markdown table of ``titles`` over ``rows``."""
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines.extend("| " + " | ".join(str(c) for c in cells) + " |" for cells in rows)
    return "\n".join(lines) + "\n"


def markdown_table(records: list[dict[str, Any]], runs: bool = False) -> str:
    """Records (``genae evaluate``'s JSON) as a markdown table, one row per record.

    Args:
        records: The records.
        runs: Also the ``Config`` and ``Seed`` columns of each run (:func:`describe_runs`).
    """
    columns = metric_columns(records)
    titles = ["Method", "Dataset", *(["Config", "Seed"] if runs else []), "Steps",
              *(t for t, _, _ in columns), "FID features"]
    rows = []
    for r in records:
        metrics = r.get("metrics", {})
        rows.append([r.get("name", "?"), r.get("dataset", "?"),
                     *([r.get("config_label", "?"), _cell(r.get("seed"), "d")] if runs else []),
                     _cell(r.get("global_step"), "d"),
                     *(_cell(metrics.get(key), fmt) for _, key, fmt in columns),
                     r.get("fid_feature") or "–"])
    return _markdown(titles, rows)


def csv_table(records: list[dict[str, Any]]) -> str:
    """Records as CSV with full-precision values (one row per record)."""
    out = io.StringIO()
    writer = csv.writer(out)
    keys = [key for _, key, _ in metric_columns(records)]
    writer.writerow(["method", "dataset", "config", "seed", "global_step", *keys, "fid_feature",
                     "source"])
    for r in records:
        metrics = r.get("metrics", {})
        writer.writerow([r.get("name"), r.get("dataset"), r.get("config_label"), r.get("seed"),
                         r.get("global_step"), *(metrics.get(key) for key in keys),
                         r.get("fid_feature"), r.get("checkpoint") or r.get("source")])
    return out.getvalue()


def _read_run_config(config_path: Path) -> dict[str, Any] | None:
    """A run's saved LightningCLI ``config.yaml`` as a mapping (None when there is none)."""
    if not config_path.is_file():
        return None
    config = read_yaml(config_path)
    return config if isinstance(config, dict) else {}


def _class_names(config_path: Path) -> tuple[str | None, str | None]:
    """Method and dataset class names from a run's saved LightningCLI ``config.yaml``."""
    config = _read_run_config(config_path)
    if config is None:
        return None, None

    def name(section: str) -> str | None:
        value = config.get(section)
        path = value.get("class_path") if isinstance(value, dict) else None
        return path.rsplit(".", 1)[-1] if path else None

    return name("model"), name("data")


# Settings that say where a run writes, how it is logged or shown, not what it trains or scores:
# left out when runs are compared (with the seed, ``seed_everything``).
NOT_SETTINGS = frozenset({
    "seed_everything", "logger", "default_root_dir", "save_dir", "dirpath", "cache_dir", "root",
    "ckpt_path", "progress", "enable_progress_bar", "enable_model_summary",
})
# the flat keys a GenaeWandbLogger adds to the W&B run config (copies of nested settings)
WANDB_FLAT_KEYS = frozenset({"method", "dataset", "seed", "fid_feature"})
UNSET = "(unset)"  # a setting one run of a config has and another lacks


def flatten_settings(value: Any, prefix: str = "") -> dict[str, Any]:
    """A saved LightningCLI config as ``{"model.backbone.width": 0.25, ...}``.

    ``class_path`` / ``init_args`` pairs become the class under the key and the arguments below
    it (``model`` -> ``genae_lightning.methods.AE``, ``model.latent_dim`` -> 32); items of a list
    of classes are keyed by their class name (``trainer.callbacks.FitLatentPrior.seed``), else by
    position. Keys in :data:`NOT_SETTINGS` are left out, with everything below them.
    """
    if isinstance(value, dict) and "class_path" in value:
        flat = {prefix: value["class_path"]} if prefix else {}
        rest = {k: v for k, v in value.items() if k not in ("class_path", "init_args")}
        init_args = value.get("init_args")
        return {**flat, **flatten_settings({**(init_args if isinstance(init_args, dict) else {}),
                                            **rest}, prefix)}
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            if str(key) not in NOT_SETTINGS:
                flat.update(flatten_settings(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        names = [_class_name(item) for item in value]
        flat = {}
        for i, (name, item) in enumerate(zip(names, value, strict=True)):
            segment = name if name is not None and names.count(name) == 1 else str(i)
            flat.update(flatten_settings(item, f"{prefix}.{segment}" if prefix else segment))
        return flat
    return {prefix: value}


def _class_name(value: Any) -> str | None:
    """``a.b.Class`` -> ``Class`` for a ``class_path`` mapping; None for anything else."""
    path = value.get("class_path") if isinstance(value, dict) else None
    return str(path).rsplit(".", 1)[-1] if path else None


def config_name(config: dict[str, Any]) -> str | None:
    """A run's config name: its W&B logger's group, else its CSV logger's name (None if neither).

    ``genae fit --config <name>`` sets both to the config file's stem; the CSVLogger default
    ``lightning_logs`` names no config.
    """
    trainer = config.get("trainer")
    loggers = trainer.get("logger") if isinstance(trainer, dict) else None
    loggers = [logger for logger in (loggers if isinstance(loggers, list) else [loggers])
               if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict)]
    for key in ("group", "name"):
        for logger in loggers:
            value = logger["init_args"].get(key)
            if isinstance(value, str) and value and value != "lightning_logs":
                return value
    return None


def _seed(value: Any) -> int | None:
    """A run's seed (``seed_everything``) when it is a whole number, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_fields(config: dict[str, Any] | None, group: str | None = None) -> dict[str, Any]:
    """The config name, seed and settings of a run, from its saved config (or W&B run config).

    Args:
        config: The run's ``config.yaml`` or W&B run config; None when there is none.
        group: The W&B group (the config name when the config does not say).

    Returns:
        ``config`` (the name, None when unknown), ``seed`` and ``run_settings`` (flattened).
    """
    if config is None:
        return {"config": group, "seed": None, "run_settings": {}}
    seed = config.get("seed_everything", config.get("seed"))
    settings = {k: v for k, v in config.items() if k not in WANDB_FLAT_KEYS}
    return {"config": config_name(config) or group, "seed": _seed(seed),
            "run_settings": flatten_settings(settings)}


def evaluation_settings(record: dict[str, Any]) -> dict[str, Any]:
    """``genae evaluate``'s settings (and split) of an evaluation record, as ``evaluate.<key>``."""
    settings = record.get("settings")
    settings = {**(settings if isinstance(settings, dict) else {}),
                **({"split": record["split"]} if "split" in record else {})}
    return {f"evaluate.{k}": v for k, v in flatten_settings(settings).items()}


def record_from_csv_log(metrics_csv: Path) -> dict[str, Any] | None:
    """The last logged value of each metric in a CSVLogger ``metrics.csv`` (None if none)."""
    metrics: dict[str, float] = {}
    step = None
    try:
        with metrics_csv.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            for row in reader:
                where = f"{metrics_csv}, line {reader.line_num}"
                logged = {k: _number(v, where, k) for k, v in row.items()
                          if k is not None and is_report_key(k) and v not in (None, "")}
                if logged:
                    metrics.update(logged)
                    step = int(_number(row["step"], where, "step")) if row.get("step") else step
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{metrics_csv} is not a CSV file written by Lightning's CSVLogger "
                         f"({err}); remove it, or leave its run out of the report") from None
    if not metrics:
        return None
    method, dataset = _class_names(metrics_csv.parent / "config.yaml")
    return {"name": method or metrics_csv.parent.name, "dataset": dataset or "?",
            "global_step": step, "metrics": metrics, "fid_feature": None,
            "source": str(metrics_csv),
            **run_fields(_read_run_config(metrics_csv.parent / "config.yaml"))}


def wandb_records(run_file: Path) -> Iterator[Any]:
    """The protobuf records of an offline W&B run file (``run-<id>.wandb``).

    The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks, each with
    a 7-byte header (checksum, length, type: 1 full, 2 first, 3 middle, 4 last).
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32768
    if not data.startswith(b":W&B"):
        raise ValueError(f"{run_file} is not a W&B run file (expected the ':W&B' header)")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a header: skip to next block
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # end, or a chunk still being written
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pending)
            except DecodeError as err:
                raise ValueError(
                    f"{run_file}: the record ending at byte {pos} is not a W&B record ({err}): the "
                    "file is damaged; remove it, or leave its run out of the report"
                ) from None
            yield record


def _json_value(run_file: Path, key: str, text: str) -> Any:
    """A W&B record's JSON-encoded value; malformed JSON is an error naming the file and key."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{run_file}: the value of {key!r} is not valid JSON ({err}): the file "
                         "is damaged; remove it, or leave its run out of the report") from None


def wandb_run(run_file: Path) -> tuple[Any | None, list[dict[str, Any]]]:
    """The run record (``run_group``, ``tags``, ...) and the history rows of an offline run."""
    run, rows = None, []
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = _json_value(run_file, key, item.value_json)
            rows.append(row)
    return run, rows


def wandb_config(run_file: Path) -> dict[str, Any]:
    """The run config of an offline W&B run: its initial config, then its later updates."""
    config: dict[str, Any] = {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        items = (record.run.config.update if kind == "run" else
                 record.config.update if kind == "config" else [])
        for item in items:
            key = item.key or "/".join(item.nested_key)
            config[key] = _json_value(run_file, key, item.value_json)
    config.pop("_wandb", None)
    return config


def record_from_wandb_run(run_file: Path) -> dict[str, Any] | None:
    """Last logged metric values, method and dataset of an offline W&B run.

    The dataset is the run config's ``dataset`` (older runs: the group); the name is the first
    tag that is neither the group nor the dataset (the method unless other tags come first).
    """
    run, rows = wandb_run(run_file)
    metrics: dict[str, float] = {}
    step = None
    for row in rows:
        logged = {k: _number(v, run_file, k) for k, v in row.items() if is_report_key(k)}
        if logged:
            metrics.update(logged)
            if row.get("trainer/global_step") is not None:
                step = int(_number(row["trainer/global_step"], run_file, "trainer/global_step"))
    if not metrics:
        return None
    group = (run.run_group or None) if run is not None else None
    config = wandb_config(run_file)
    dataset = config.get("dataset") or group
    methods = [t for t in (run.tags if run is not None else []) if t not in (group, dataset)]
    return {"name": methods[0] if methods else run_file.parent.name, "dataset": dataset or "?",
            "global_step": step, "metrics": metrics, "fid_feature": config.get("fid_feature"),
            "source": str(run_file), **run_fields(config or None, group)}


def read_evaluation(path: Path) -> dict[str, Any]:
    """One ``genae evaluate`` JSON record; a malformed file is an error naming it."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({err}); it should be a record written by `genae "
            "evaluate`: re-run `genae evaluate --ckpt_path ...` or remove the file"
        ) from err
    if not isinstance(record, dict):
        raise ValueError(
            f"{str(path)!r} holds a JSON {type(record).__name__}, not the object `genae evaluate` "
            "writes: re-run `genae evaluate --ckpt_path ...` or remove the file"
        )
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: 'metrics' holds a JSON {type(metrics).__name__}, expected the "
                         "object of metric values `genae evaluate` writes: re-run it or remove "
                         "the file")
    record["metrics"] = {key: value if value is None or not is_report_key(key)
                         else _number(value, path, f"metrics.{key}")
                         for key, value in metrics.items()}
    if "features" in record:  # the key before `fid_feature` (genae evaluate's old records)
        record.setdefault("fid_feature", record.pop("features"))
    step = record.get("global_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValueError(f"{path}: 'global_step' is {step!r}, expected a whole number of steps "
                         "(or null): re-run `genae evaluate` or remove the file")
    for key in ("name", "dataset", "checkpoint", "source"):
        if not isinstance(record.get(key, ""), str | None):
            raise ValueError(f"{path}: {key!r} is {record[key]!r}, expected text: re-run "
                             "`genae evaluate` or remove the file")
    return record


def collect_records(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Records from JSON files and run directories (evaluations first, else logs)."""
    records: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix == ".json":
            records.append(_with_run_fields(read_evaluation(path), path))
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{str(path)!r} is neither a run directory nor a JSON file "
                                    "written by `genae evaluate`")
        found = [_with_run_fields(read_evaluation(p), p)
                 for p in sorted(path.rglob("evaluation*.json"))]
        for pattern, read in (("metrics.csv", record_from_csv_log),
                              ("run-*.wandb", record_from_wandb_run)):
            if not found:  # the same run logs to both: read one kind of log only
                found = [r for p in sorted(path.rglob(pattern)) if (r := read(p)) is not None]
        if not found:
            raise FileNotFoundError(
                f"no results under {str(path)!r}: expected evaluation*.json (run `genae evaluate "
                "--ckpt_path ...` first) or GenerativeMetrics values in metrics.csv / offline W&B "
                "runs"
            )
        records.extend(found)
    return _unique_names(describe_runs(records))


def _with_run_fields(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """An evaluation record with its run's config name, seed and settings (:func:`run_fields`).

    The run's ``config.yaml`` is looked for beside the evaluated checkpoint, one folder up
    (``<log dir>/checkpoints/last.ckpt``) and beside the evaluation file; ``genae evaluate``'s
    own settings are added to the run's.
    """
    checkpoint = Path(record["checkpoint"]) if record.get("checkpoint") else None
    folders = [*((checkpoint.parent, checkpoint.parent.parent) if checkpoint else ()), path.parent]
    config = next((c for c in (_read_run_config(f / "config.yaml") for f in folders)
                   if c is not None), None)
    fields = run_fields(config)
    fields["run_settings"] = {**fields["run_settings"], **evaluation_settings(record)}
    if fields["seed"] is None:
        fields["seed"] = _seed(record.get("seed"))
    return {**record, **fields}


def _setting_text(value: Any) -> str:
    """A setting's value as text (lists and mappings as compact JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def describe_runs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each record its ``base_name`` and ``config_label``: config name plus what sets it apart.

    Call before names are made unique. The config name is the run's (:func:`run_fields`), else
    the record's name (the method). The settings that set a run apart are those in which the
    runs of its config name differ (a setting one run lacks counts as :data:`UNSET`), written
    ``key=value``; runs that differ only in their seed share a label.
    """
    for record in records:
        record["base_name"] = record.get("name") or "?"
        record["config"] = record.get("config") or record["base_name"]
        record.setdefault("run_settings", {})
    by_config: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_config.setdefault(record["config"], []).append(record)
    for runs in by_config.values():
        keys = sorted({key for r in runs for key in r["run_settings"]})
        differ = [key for key in keys
                  if len({_setting_text(r["run_settings"].get(key, UNSET)) for r in runs}) > 1]
        for r in runs:
            settings = ", ".join(f"{key}={_setting_text(r['run_settings'].get(key, UNSET))}"
                                 for key in differ)
            r["config_label"] = f"{r['config']} ({settings})" if settings else r["config"]
    return records


@dataclass
class Group:
    """The runs of one config and setting (same dataset, step and FID features).

    Attributes:
        config: The config label (:func:`describe_runs`).
        method: The method's name.
        dataset: The dataset's name.
        global_step: The step the metrics are from.
        fid_feature: The FID features (None when not recorded).
        records: The runs, in report order.
    """

    config: str
    method: str
    dataset: str
    global_step: int | None
    fid_feature: str | None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seeds(self) -> list[int | None]:
        """The runs' seeds, in report order."""
        return [r.get("seed") for r in self.records]

    def values(self, key: str) -> list[float]:
        """The runs' values of a metric (runs without it, or with NaN, are left out)."""
        values = [r.get("metrics", {}).get(key) for r in self.records]
        return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def group_records(records: list[dict[str, Any]]) -> list[Group]:
    """The records (after :func:`describe_runs`) in groups, in order of first appearance.

    A group is one config and setting, dataset, step and FID features.
    """
    groups: dict[tuple[Any, ...], Group] = {}
    for r in records:
        key = (r["config_label"], r["base_name"], r.get("dataset"), r.get("global_step"),
               r.get("fid_feature"))
        groups.setdefault(key, Group(*key)).records.append(r)
    return list(groups.values())


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); sd None when n < 2, both None when n = 0."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _mean_sd_cell(values: list[float], n: int, fmt: str) -> str:
    """``mean ± sd`` (the value alone for one run), plus ``(n=k)`` when only k of n runs have it."""
    mean, sd = mean_sd(values)
    if mean is None:
        return "–"
    text = format(mean, fmt) + ("" if sd is None else f" ± {format(sd, fmt)}")
    return text if len(values) == n else f"{text} (n={len(values)})"


def _seeds_text(seeds: list[int | None]) -> str:
    return ", ".join("–" if s is None else str(s) for s in seeds)


def grouped_markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per config and setting: n, seeds and each metric's mean ± sd over the runs."""
    columns = metric_columns(records)
    titles = ["Config", "Method", "Dataset", "Steps", "n", "Seeds", *(t for t, _, _ in columns),
              "FID features"]
    rows = [[g.config, g.method, g.dataset, _cell(g.global_step, "d"), len(g.records),
             _seeds_text(g.seeds),
             *(_mean_sd_cell(g.values(key), len(g.records), fmt) for _, key, fmt in columns),
             g.fid_feature or "–"] for g in group_records(records)]
    return _markdown(titles, rows)


def grouped_csv_table(records: list[dict[str, Any]]) -> str:
    """The grouped table as CSV, full precision.

    Per metric: ``<key>/mean``, ``<key>/sd`` (empty for one run) and ``<key>/n`` (the runs with
    a value); ``seeds`` lists the seeds, separated by spaces.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    keys = [key for _, key, _ in metric_columns(records)]
    writer.writerow(["config", "method", "dataset", "global_step", "n", "seeds",
                     *(f"{key}/{stat}" for key in keys for stat in ("mean", "sd", "n")),
                     "fid_feature"])
    for g in group_records(records):
        stats = []
        for key in keys:
            values = g.values(key)
            stats.extend([*mean_sd(values), len(values)])
        writer.writerow([g.config, g.method, g.dataset, g.global_step, len(g.records),
                         " ".join("" if s is None else str(s) for s in g.seeds), *stats,
                         g.fid_feature])
    return out.getvalue()


def report_text(records: list[dict[str, Any]]) -> str:
    """The report's markdown: the per-run table, then the table grouped by config."""
    return (f"## Runs\n\n{markdown_table(records, runs=True)}\n"
            "## Mean ± sd over the runs of each config (sample sd; the value alone for one "
            f"run)\n\n{grouped_markdown_table(records)}")


def _unique_names(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tell apart rows that share a method and dataset by their source folder."""
    keys = [(r.get("name"), r.get("dataset")) for r in records]
    for record, key in zip(records, keys, strict=True):
        if keys.count(key) > 1:
            source = Path(record.get("checkpoint") or record.get("source") or "?")
            folder = source.parent.parent if source.parent.name == "checkpoints" else source.parent
            record["name"] = f"{record.get('name')} ({folder.name})"
    return sorted(records, key=lambda r: str(r.get("dataset")))


def report(argv: list[str]) -> str:
    """``genae report``: one comparison table (markdown and CSV) over several runs."""
    parser = argparse.ArgumentParser(prog="genae report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or evaluation JSON files")
    parser.add_argument("--out", default="report",
                        help="output prefix: writes PREFIX.md (both tables), PREFIX.csv (one "
                             "row per run) and PREFIX_groups.csv (one row per config) "
                             "(default: report)")
    args = parser.parse_args(argv)
    records = collect_records(args.runs)
    text = report_text(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = out.with_suffix(".md"), out.with_suffix(".csv"), groups_csv_path(out)
    for path, content in zip(paths, (text, csv_table(records), grouped_csv_table(records)),
                             strict=True):
        path.write_text(content)
    print(text, end="")
    print(f"wrote {paths[0]}, {paths[1]} and {paths[2]}")
    return text


def groups_csv_path(out: Path) -> Path:
    """Where the grouped CSV of ``--out PREFIX`` goes: ``PREFIX_groups.csv``."""
    stem = out.with_suffix("")
    return stem.with_name(f"{stem.name}_groups.csv")
