"""The lines ``genae fit`` prints at the start and at the end: where the run's files are.

:func:`run_files` collects, from the Trainer after ``fit``, the run folder, the checkpoint, the
CSV metrics, the image grids and the W&B run folder; :func:`fit_summary` formats them with the
final metrics (the report's columns, read back from ``metrics.csv``, and the last training loss).
"""

import math
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from genae_lightning.callbacks.images import ImageLogger
from genae_lightning.commands.report import record_from_csv_log


def run_folder(trainer: L.Trainer) -> Path:
    """The run's own folder (``<root>/<name>/version_<n>``).

    ``trainer.log_dir`` broadcasts under DDP: call this on every rank.
    """
    return Path(trainer.log_dir or trainer.default_root_dir)


def relative(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def wandb_run_folder(logger: WandbLogger) -> Path | None:
    """The local folder of ``logger``'s W&B run (``wandb/offline-run-*-<id>``), once it exists."""
    if logger.version is None:
        return None
    runs = sorted(Path(logger.save_dir or ".").glob(f"wandb/*run-*-{logger.version}"))
    return runs[-1] if runs else None


def run_files(trainer: L.Trainer, folder: Path) -> dict[str, list[Path]]:
    """The files a finished ``fit`` wrote, by kind: checkpoint, metrics, grids, W&B run."""
    files: dict[str, list[Path]] = {"checkpoint": [], "metrics": [], "grids": [], "W&B run": []}
    callback = trainer.checkpoint_callback
    if callback is not None:
        for path in dict.fromkeys([callback.last_model_path, callback.best_model_path]):
            if path and Path(path).is_file():
                files["checkpoint"].append(Path(path))
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger) and (Path(logger.log_dir) / "metrics.csv").is_file():
            files["metrics"].append(Path(logger.log_dir) / "metrics.csv")
        if isinstance(logger, WandbLogger) and (wandb_folder := wandb_run_folder(logger)):
            files["W&B run"].append(wandb_folder)
    for callback in trainer.callbacks:
        if isinstance(callback, ImageLogger):
            grid_dir = Path(callback.save_dir) if callback.save_dir else folder
            files["grids"].extend(sorted(grid_dir.glob("*.png")))
    return files


def final_metrics(trainer: L.Trainer, metrics_files: list[Path]) -> dict[str, float]:
    """The last training loss and the report's metrics (FIDs, 5-NN accuracy, SSE) of the run."""
    metrics: dict[str, float] = {}
    loss = trainer.callback_metrics.get("train/loss")
    if loss is not None:
        metrics["train/loss"] = float(loss)
    for path in metrics_files:
        record = record_from_csv_log(path)
        if record is not None:
            metrics.update(record["metrics"])
    return metrics


def _number(value: float) -> str:
    if not math.isfinite(value) or value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def fit_summary(trainer: L.Trainer, folder: Path, seconds: float) -> str:
    """The lines printed at the end of ``genae fit``: time, steps, files and final metrics."""
    files = run_files(trainer, folder)
    lines = [f"genae fit: done in {seconds:.0f} s ({trainer.global_step} steps); "
             f"run folder {relative(folder)}"]
    for kind, paths in files.items():
        if kind == "grids" and paths:
            names = ", ".join(p.name for p in paths)
            lines.append(f"  {kind:<11} {relative(paths[0].parent)}/: {names}")
        else:
            lines.extend(f"  {kind:<11} {relative(p)}" for p in paths)
    for path in files["W&B run"]:
        if path.name.startswith("offline-run-"):
            lines.append(f"  {'':<11} (offline: upload it with `wandb sync {relative(path)}`)")
    metrics = final_metrics(trainer, files["metrics"])
    if metrics:
        lines.append("  final       " + ", ".join(f"{key} {_number(value)}"
                                               for key, value in metrics.items()))
    return "\n".join(lines)
