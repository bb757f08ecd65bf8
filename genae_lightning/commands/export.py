"""``genae export``: a ``genae fit`` checkpoint as a folder to share (Hugging Face Hub layout).

The folder holds ``model.safetensors``, ``config.json`` and a ``README.md`` model card (see
:mod:`genae_lightning.checkpoints.pretrained`); ``from_pretrained(folder)`` loads it back, and
``hf upload user/name <folder>`` (huggingface_hub's command) shares it on the Hub.

The card's dataset and metrics come from the run when they are not given: the dataset from the
run's ``config.yaml`` (its ``data`` class), the metrics from the ``evaluation.json`` that
``genae evaluate`` wrote into the run folder for this checkpoint.
"""

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from genae_lightning.checkpoints.pretrained import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    save_pretrained,
)
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.commands.checkpoints import checkpoint_file, run_config
from genae_lightning.commands.config_files import read_yaml
from genae_lightning.methods import method_from_checkpoint
from genae_lightning.trust import import_trusted

EVALUATION_NAME = "evaluation.json"


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``genae export``."""
    description = re.sub(r":\w+:`([^`]+)`", r"\1", __doc__ or "").replace("``", "`")
    parser = argparse.ArgumentParser(prog="genae export", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `genae fit`")
    parser.add_argument("--out", required=True, help="the folder to write (created if missing)")
    parser.add_argument("--dataset", default=None,
                        help="training dataset for the card (default: the run's data class)")
    parser.add_argument("--license", default=None, help="license of the weights, e.g. mit")
    parser.add_argument("--metrics", default=None,
                        help=f"a `genae evaluate` {EVALUATION_NAME} whose metrics go into the "
                             f"card (default: the run folder's, if it evaluated this checkpoint)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of the folder that genae-lightning did not write")
    parser.add_argument("--trust", action="append", default=[], metavar="module.Class",
                        help="your own class the checkpoint may name (repeatable)")
    return parser


def run_folder(ckpt: Path) -> Path:
    """The run folder of a checkpoint, where ``genae evaluate`` writes its ``evaluation.json``.

    The folder above its ``checkpoints/``; else the folder of the run's ``config.yaml``; else the
    checkpoint's own folder.
    """
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent
    config = run_config(ckpt)
    return config.parent if config is not None else ckpt.parent


def run_dataset(ckpt: Path) -> str | None:
    """The class name of the run's data (``MNIST``), read from its ``config.yaml`` as text.

    Only the name is read (it goes into the card): nothing is imported.
    """
    config = run_config(ckpt)
    saved = read_yaml(config) if config is not None else None
    data = saved.get("data") if isinstance(saved, dict) else None
    name = data.get("class_path") if isinstance(data, dict) else data
    return name.rsplit(".", 1)[-1] if isinstance(name, str) and name else None


def read_evaluation(path: Path) -> dict[str, Any]:
    """A ``genae evaluate`` record, checked to be a JSON object with a ``metrics`` object."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err}); pass the {EVALUATION_NAME} "
                         "that `genae evaluate` wrote") from err
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise ValueError(f"{path}: expected the object `genae evaluate` writes, with its "
                         "metrics; pass that file, or no --metrics")
    return record


def finite_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite metrics of an evaluation record (a card holds numbers only)."""
    return {str(k): v for k, v in record["metrics"].items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def evaluates(record: dict[str, Any], ckpt: Path, step: int | None) -> bool:
    """Whether an evaluation record scored this checkpoint (its file, or its step)."""
    if record.get("checkpoint") == str(ckpt.resolve()):
        return True
    return step is not None and record.get("global_step") == step


def evaluation_for(given: str | None, ckpt: Path,
                   step: int | None) -> tuple[dict[str, Any] | None, str]:
    """The evaluation record for the card, and a line saying where its metrics came from.

    ``--metrics`` is used as given (a note says when it scored another checkpoint); otherwise
    the run folder's ``evaluation.json`` is used when it scored this checkpoint.
    """
    if given is not None:
        record = read_evaluation(Path(given))
        other = "" if evaluates(record, ckpt, step) else (
            f" (note: it scored {record.get('checkpoint')}, step {record.get('global_step')})")
        return record, f"metrics from {given}{other}"
    found = run_folder(ckpt) / EVALUATION_NAME
    if not found.is_file():
        return None, (f"no metrics: no {EVALUATION_NAME} in {found.parent} (run `genae evaluate "
                      f"--ckpt_path {ckpt}` first, or pass --metrics)")
    record = read_evaluation(found)
    if not evaluates(record, ckpt, step):
        return None, (f"no metrics: {found} scored another checkpoint "
                      f"({record.get('checkpoint')}); pass --metrics to use it anyway")
    return record, f"metrics from {found}"


def how_to_load(out: Path, custom: dict[str, str] | None) -> str:
    """The lines ``genae export`` prints after writing: how to load and share the folder."""
    modules = ", encoder=MyEncoder(...), decoder=MyDecoder(...)" if custom else ""
    return "\n".join([
        "load it with:",
        "  from genae_lightning import from_pretrained",
        f"  model = from_pretrained({str(out)!r}{modules})",
        f"share it on the Hub: hf upload <user>/<name> {out}   (hf: pip install "
        '"genae-lightning[hub]")',
    ])


def export(argv: list[str]) -> Path:
    """``genae export``: write a checkpoint as a folder to share (safetensors, config, card)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ckpt = checkpoint_file(args.ckpt_path)
        trusted = import_trusted(args.trust)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    checkpoint = read_checkpoint(ckpt)
    model = method_from_checkpoint(checkpoint, str(ckpt), trusted=trusted)
    record, source = evaluation_for(args.metrics, ckpt, checkpoint.get("global_step"))
    dataset = args.dataset or (record or {}).get("dataset") or run_dataset(ckpt)
    out = Path(args.out)
    try:
        save_pretrained(model, out, dataset=dataset, license=args.license,
                        metrics=finite_metrics(record) if record else None,
                        overwrite=args.overwrite)
    except FileExistsError as err:
        parser.error(str(err).replace("overwrite=True", "--overwrite"))
    priors = ", ".join(sorted(model.posthoc_priors.keys())) or "none"
    print(f"wrote {out}{os.sep}: {CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME}\n"
          f"  {type(model).__name__} on {dataset or 'an unrecorded dataset'}; post-hoc priors: "
          f"{priors}\n  card: {source}")
    print(how_to_load(out, getattr(model, "custom_networks", None)))
    return out
