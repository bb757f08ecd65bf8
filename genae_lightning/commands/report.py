"""``genae report``: the papers' comparison table from evaluated runs (or their training logs).

Rows are methods, columns the InjFlow paper's FIDs (reconstructions, post-hoc Gaussian "N",
post-hoc GMM; plus the method's own prior) and SWAE's 5-NN accuracy and reconstruction loss.
FIDs of different feature extractors get separate columns: ``fid/*`` (Inception, "FID"),
``cfid/*`` (a classifier, "cFID"), ``fid_<id>/*`` (another module, "FID (<id>)").
Sources, per run directory given: the ``evaluation*.json`` files ``genae evaluate`` wrote; if
there are none, the last values logged by ``GenerativeMetrics`` in CSV logs (``metrics.csv``);
if there are none either, in offline W&B runs (``run-*.wandb``).
"""

import argparse
import csv
import io
import json
import math
import struct
from collections.abc import Iterator
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


def markdown_table(records: list[dict[str, Any]]) -> str:
    """Records (``genae evaluate``'s JSON) as a markdown table, one row per record."""
    columns = metric_columns(records)
    titles = ["Method", "Dataset", "Steps", *(t for t, _, _ in columns), "FID features"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for r in records:
        metrics = r.get("metrics", {})
        cells = [r.get("name", "?"), r.get("dataset", "?"), _cell(r.get("global_step"), "d"),
                 *(_cell(metrics.get(key), fmt) for _, key, fmt in columns),
                 r.get("features") or "–"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(records: list[dict[str, Any]]) -> str:
    """Records as CSV with full-precision values (one row per record)."""
    out = io.StringIO()
    writer = csv.writer(out)
    keys = [key for _, key, _ in metric_columns(records)]
    writer.writerow(["method", "dataset", "global_step", *keys, "features", "source"])
    for r in records:
        metrics = r.get("metrics", {})
        writer.writerow([r.get("name"), r.get("dataset"), r.get("global_step"),
                         *(metrics.get(key) for key in keys), r.get("features"),
                         r.get("checkpoint") or r.get("source")])
    return out.getvalue()


def _class_names(config_path: Path) -> tuple[str | None, str | None]:
    """Method and dataset class names from a run's saved LightningCLI ``config.yaml``."""
    if not config_path.is_file():
        return None, None
    config = read_yaml(config_path)
    config = config if isinstance(config, dict) else {}

    def name(section: str) -> str | None:
        value = config.get(section)
        path = value.get("class_path") if isinstance(value, dict) else None
        return path.rsplit(".", 1)[-1] if path else None

    return name("model"), name("data")


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
            "global_step": step, "metrics": metrics, "features": None,
            "source": str(metrics_csv)}


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
            "global_step": step, "metrics": metrics, "features": config.get("fid_feature"),
            "source": str(run_file)}


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
            records.append(read_evaluation(path))
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{str(path)!r} is neither a run directory nor a JSON file "
                                    "written by `genae evaluate`")
        found = [read_evaluation(p) for p in sorted(path.rglob("evaluation*.json"))]
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
    return _unique_names(records)


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
                        help="output prefix: writes PREFIX.md and PREFIX.csv (default: report)")
    args = parser.parse_args(argv)
    records = collect_records(args.runs)
    table = markdown_table(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table)
    out.with_suffix(".csv").write_text(csv_table(records))
    print(table, end="")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')}")
    return table
