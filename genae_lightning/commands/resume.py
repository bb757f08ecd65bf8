"""What a resume must keep: the checkpoint's method, its settings, and its data split.

``genae fit --ckpt_path`` continues a run exactly or not at all. These checks compare what the
command builds with what the checkpoint was trained with, and refuse any difference that a
resume could not honour, naming each setting, its value now and in the checkpoint.
"""

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from genae_lightning.trust import names_class

# DataModule settings that neither split the data nor order its batches: they may change on resume.
DATA_KEYS_FREE_ON_RESUME = frozenset({"num_workers", "root", "download", "verify_checksum",
                                      "in_memory"})
# Files ``--ckpt_path last`` resumes from (Lightning's last checkpoints and GracefulInterrupt's).
LAST_PATTERNS = ("last.ckpt", "last-v*.ckpt", "interrupted.ckpt")


class ResumeError(ValueError):
    """A resume that would not continue the checkpoint's run."""


def _plain(value: Any) -> Any:
    """``value`` with mappings (Namespaces too) as dicts, sequences as lists, paths as str."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested settings (``backbone.init_args.hidden``); private ``_`` keys out."""
    flat: dict[str, Any] = {}
    for key, value in _plain(settings).items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(now: Any, saved: Any, free: frozenset[str] = frozenset()) -> list[str]:
    """Lines ``key: <now> now, <saved> in the checkpoint`` for settings present in both."""
    now_flat, saved_flat = flatten(now), flatten(saved)
    return [
        f"{key}: {now_flat[key]!r} now, {saved_flat[key]!r} in the checkpoint"
        for key in sorted(now_flat.keys() & saved_flat.keys())
        if key.split(".")[0] not in free and now_flat[key] != saved_flat[key]
    ]


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _saved_class(checkpoint: dict[str, Any], entry: str) -> str | None:
    """The import path of the class that wrote ``entry`` of the checkpoint, when recorded."""
    if entry == "hyper_parameters":
        method = (checkpoint.get("genae") or {}).get("method")
        if method:
            return str(method)
    saved = checkpoint.get(entry) or {}
    return str(saved["_class_path"]) if "_class_path" in saved else None


def _same_class(cls: type, path: str) -> bool:
    """Whether the checkpoint's ``path`` names ``cls`` (compared by name: nothing is imported)."""
    return _qualified(cls) == path or names_class(cls, path, short=False)


def _check_class(path: Path, checkpoint: dict[str, Any], obj: object, entry: str,
                 what: str, option: str) -> None:
    saved = _saved_class(checkpoint, entry)
    if saved is not None and not _same_class(type(obj), saved):
        raise ResumeError(
            f"checkpoint {str(path)!r} was trained with {what} {saved.rpartition('.')[2]} "
            f"({saved}), but the config builds {type(obj).__name__} ({_qualified(type(obj))}); "
            f"resume with the checkpoint's {what} (its run's config, or {option} "
            f"{saved.rpartition('.')[2]}), or start a new run without --ckpt_path"
        )


def _refuse(path: Path, what: str, lines: list[str], fix: str) -> None:
    listed = "\n  ".join(lines)
    raise ResumeError(
        f"resuming from {str(path)!r} with {what} settings that differ from the checkpoint's:\n"
        f"  {listed}\n{fix}"
    )


def check_method(path: Path, checkpoint: dict[str, Any], model: L.LightningModule) -> None:
    """Refuse a model of another class, or with other hyperparameters, than the checkpoint's."""
    _check_class(path, checkpoint, model, "hyper_parameters", "method", "--model")
    if hasattr(model, "check_image_shape"):  # the data's image shape: named as such
        model.check_image_shape(checkpoint, path)
    lines = differences(model.hparams, checkpoint.get("hyper_parameters") or {})
    if lines:
        _refuse(path, "model", lines,
                "A resume continues the checkpoint's run with its settings (the optimizer state, "
                "the schedule and the weights' shapes come from it): set these to the "
                "checkpoint's values (its run's config.yaml has them) or drop the overrides, or "
                "start a new run without --ckpt_path to train with the new settings.")


def check_data(path: Path, checkpoint: dict[str, Any], datamodule: L.LightningDataModule) -> None:
    """Refuse data settings that would re-split train/val or move the loader's position."""
    saved = checkpoint.get("datamodule_hyper_parameters")
    if saved is None:
        return
    _check_class(path, checkpoint, datamodule, "datamodule_hyper_parameters", "data", "--data")
    lines = differences(datamodule.hparams, saved, free=DATA_KEYS_FREE_ON_RESUME)
    if lines:
        _refuse(path, "data", lines,
                "They decide the train/val split and the order and position of the batches, so "
                "validation images would leak into training or the epoch would restart at the "
                "wrong batch: set them to the checkpoint's values (e.g. --data.seed, "
                "--data.val_size, --data.batch_size), or start a new run without --ckpt_path. "
                f"Only {', '.join(sorted(DATA_KEYS_FREE_ON_RESUME))} may change on resume.")


def last_checkpoint_dirs(trainer: L.Trainer) -> list[Path]:
    """The folders a run of ``trainer`` writes its checkpoints to, over all its versions."""
    dirs = [
        Path(cb.dirpath) for cb in trainer.checkpoint_callbacks
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is not None
    ]
    if trainer.loggers:
        logger = trainer.loggers[0]  # where ModelCheckpoint puts a run's checkpoints
        root = Path(logger.save_dir or trainer.default_root_dir)
        if logger.name:
            root = root / str(logger.name)
        versions = sorted(p for p in root.glob("*/checkpoints") if p.is_dir())
        dirs.extend(versions or [root / "<version>" / "checkpoints"])
    else:
        dirs.append(Path(trainer.default_root_dir) / "checkpoints")
    return dirs


def find_last_checkpoint(trainer: L.Trainer) -> Path:
    """The newest last (or interrupted) checkpoint of the run's folders, over all versions."""
    dirs = last_checkpoint_dirs(trainer)
    found = [p for d in dirs for pattern in LAST_PATTERNS for p in d.glob(pattern) if p.is_file()]
    if not found:
        patterns = "{" + ",".join(LAST_PATTERNS) + "}"
        searched = "\n  ".join(f"{d}/{patterns}" for d in dirs)
        raise FileNotFoundError(
            f"--ckpt_path last: no last checkpoint of this run was found; searched:\n"
            f"  {searched}\npass the checkpoint's path (--ckpt_path <.../last.ckpt>), or drop "
            "--ckpt_path to start a new run"
        )
    return max(found, key=lambda p: p.stat().st_mtime)
