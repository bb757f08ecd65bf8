"""``genae evaluate``: every metric of one checkpoint, as JSON and a one-row markdown table.

The data comes from ``--data`` (a DataModule short name or class path plus ``--data.<arg>``) or,
by default, from the ``config.yaml`` that ``genae fit`` saved in the run's log dir next to the
checkpoint; ``--data.<arg>`` alone overrides single arguments of that saved data (e.g. ``root``).
"""

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser

import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
from genae_lightning import __version__
from genae_lightning.checkpoint import method_from_checkpoint, read_checkpoint
from genae_lightning.data import ImageDataModule
from genae_lightning.metrics import FID, SAMPLERS, MetricsConfig, batchnorm, evaluate_generative
from genae_lightning.metrics.diagnostics import DiagnosticsConfig, dataset_submanifold_metrics
from genae_lightning.report import markdown_table


def run_config(ckpt_path: Path) -> Path | None:
    """The ``config.yaml`` LightningCLI saved for the run of a checkpoint, if any.

    Looked for beside the checkpoint and one folder up (``<log dir>/checkpoints/last.ckpt``).
    """
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def saved_data(ckpt_path: Path) -> dict[str, Any] | None:
    """The ``data`` section (class_path, init_args) of the run's saved config, if any."""
    config = run_config(ckpt_path)
    if config is None:
        return None
    data = (yaml.safe_load(config.read_text()) or {}).get("data")
    return data if isinstance(data, dict) and "class_path" in data else None


def evaluate_checkpoint(
    ckpt_path: str | Path,
    datamodule: ImageDataModule,
    fid: FID | None,
    config: MetricsConfig | None = None,
    split: str = "test",
    device: str = "cpu",
    name: str | None = None,
    submanifold: DiagnosticsConfig | None = None,
    recalibrate_batchnorm: int = 0,
) -> dict[str, Any]:
    """Evaluate one checkpoint on a DataModule; returns the JSON record ``genae report`` reads.

    Args:
        ckpt_path: A checkpoint written by ``genae fit`` (or a Trainer fitting a genae method).
        datamodule: The data the method was trained on.
        fid: The FID scorer, or None to skip FID.
        config: Sample counts and settings.
        split: Evaluation split: "test" or "val".
        device: Torch device for the model and the features.
        name: Row label in tables (default: the method's class name).
        submanifold: Also the dpVAE diagnostics of VAE-like methods (``skl``, ``nll``,
            ``fid/low_posterior``, ``leakage/<tau>``) with these sample counts.
        recalibrate_batchnorm: First recompute the BatchNorm running statistics over this many
            training batches (see :func:`~genae_lightning.metrics.recalibrate_batchnorm`); the
            post-hoc priors of the checkpoint are then refitted here, since the codes change.
            0 uses the statistics ``FitLatentPrior`` checked at the end of fit, or runs that
            check here on checkpoints that were not checked (it says what it did; the
            record is the JSON's ``batchnorm``).
    """
    config = config or MetricsConfig()
    start = time.perf_counter()
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path, map_location=device)
    model = method_from_checkpoint(checkpoint, str(path))
    step = checkpoint.get("global_step")
    del checkpoint  # the model holds the weights now
    had_priors = sorted(model.posthoc_priors.keys())
    datamodule.prepare_data()
    datamodule.setup("test")
    evaluation = getattr(datamodule, f"{split}_dataset", None)
    if evaluation is None:
        raise ValueError(f"{type(datamodule).__name__} has no {split}_dataset after setup; "
                         "evaluate on --split test or --split val")
    bn = batchnorm.settle_for_evaluation(
        model, datamodule.train_dataset, datamodule.val_dataset,
        config.batch_size if recalibrate_batchnorm > 0 else datamodule.batch_size,
        recalibrate_batchnorm, config.seed, config.progress)
    if bn is not None:
        print(batchnorm.describe(bn))
    if bn is not None and bn["recalibrated"] and bn["source"] != "checkpoint":
        model.posthoc_priors.clear()  # fitted to codes of the old statistics: refit below
        had_priors = []
    if fid is not None:
        fid.to(device)
    result = evaluate_generative(model, datamodule.train_dataset, evaluation, fid, config,
                                 dataset_name=type(datamodule).__name__, split=split)
    if submanifold is not None:
        result.metrics.update(dataset_submanifold_metrics(
            model, datamodule.train_dataset, evaluation, fid, submanifold, config.num_samples))
    return {
        "name": name or type(model).__name__,
        "method": type(model).__name__,
        "dataset": type(datamodule).__name__,
        "checkpoint": str(path.resolve()),
        "global_step": step,
        "split": split,
        "num_images": result.num_images,
        "features": None if fid is None else fid.feature_id,
        "samplers": {s: ("checkpoint" if s in had_priors else "fitted here")
                     for s in config.samplers if s != "prior"},
        "recalibrated_batchnorm_batches": recalibrate_batchnorm,
        "batchnorm": bn,
        "metrics": result.metrics,
        "settings": asdict(config),
        "device": device,
        "seconds": round(time.perf_counter() - start, 1),
        "genae_version": __version__,
    }


def build_parser() -> ArgumentParser:
    """Arguments of ``genae evaluate``."""
    parser = ArgumentParser(prog="genae evaluate", description=__doc__)
    parser.add_argument("--ckpt_path", type=str, required=True, help="checkpoint to evaluate")
    parser.add_subclass_arguments(ImageDataModule, "data", required=False,
                                  help="its data (default: the run's saved config.yaml)")
    parser.add_argument("--feature", type=str, default="inception",
                        help="FID features: 'inception' or a `genae train-features` file")
    parser.add_argument("--feature_extractor_weights_path", type=str | None, default=None,
                        help="local Inception weights file (offline machines)")
    parser.add_argument("--no_fid", type=bool, default=False, help="skip FID (KNN and SSE only)")
    defaults = MetricsConfig()
    parser.add_argument("--num_samples", type=int, default=defaults.num_samples,
                        help="evaluation images and samples per sampler")
    parser.add_argument("--knn_train_samples", type=int | None,
                        default=defaults.knn_train_samples, help="training codes for 5-NN")
    parser.add_argument("--k", type=int, default=defaults.k, help="neighbours of the KNN")
    parser.add_argument("--samplers", type=list[str], default=list(SAMPLERS),
                        help="samplers to score: prior, gaussian, gmm")
    parser.add_argument("--split", type=str, default="test", help="evaluation split: test or val")
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", type=str,
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache_dir", type=str | None, default=None,
                        help="cached real statistics (default ~/.cache/genae_lightning/fid)")
    parser.add_argument("--name", type=str | None, default=None,
                        help="row label (default: the method's class name)")
    parser.add_argument("--out", type=str | None, default=None,
                        help="output JSON (default: evaluation.json in the run's log dir); "
                             "the markdown row goes beside it (.md)")
    parser.add_argument("--progress", type=bool, default=True, help="show progress bars")
    parser.add_argument("--submanifold", type=bool, default=False,
                        help="VAE-like methods: also skl, nll, fid/low_posterior, leakage/<tau>")
    parser.add_argument("--recalibrate_batchnorm", type=int, default=0,
                        help="first recompute BatchNorm running statistics over this many training "
                        "batches (and refit the post-hoc priors); 0: the checkpoint as saved")
    parser.add_argument("--nll_k", type=int, default=1000,
                        help="importance samples per image of the --submanifold NLL")
    return parser


def evaluate(argv: list[str]) -> dict[str, Any]:
    """``genae evaluate``: compute FID (recon, prior, gaussian, gmm), 5-NN accuracy and SSE."""
    parser = build_parser()
    given = _ckpt_argument(argv)
    if given is not None:
        if not Path(given).is_file():
            raise FileNotFoundError(f"checkpoint {given!r} does not exist; pass --ckpt_path "
                                    "PATH/TO/last.ckpt (written by `genae fit`)")
        data_default = saved_data(Path(given))
        if data_default is not None:
            parser.set_defaults(data=data_default)
    cfg = parser.parse_args(argv)
    ckpt = Path(cfg.ckpt_path)
    if cfg.data is None:
        parser.error(
            f"cannot tell which data {str(ckpt)!r} was trained on: no --data was given and no "
            f"config.yaml was found in {str(ckpt.parent)!r} or {str(ckpt.parent.parent)!r} "
            "(`genae fit` saves it in the run's log dir). Pass the data, e.g. "
            "--data MNIST --data.root ../shared/data"
        )
    datamodule = parser.instantiate(cfg).data
    config = MetricsConfig(cfg.num_samples, cfg.knn_train_samples, cfg.k, tuple(cfg.samplers),
                           batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress)
    channels, height, width = datamodule.image_shape
    fid = None if cfg.no_fid else FID(
        cfg.feature, cfg.feature_extractor_weights_path, cfg.cache_dir,
        input_img_size=(3, height, width), progress=cfg.progress,
    )
    diagnostics = DiagnosticsConfig(nll_k=cfg.nll_k, lp_samples=cfg.num_samples,
                                    batch_size=cfg.batch_size, seed=cfg.seed)
    record = evaluate_checkpoint(ckpt, datamodule, fid, config, cfg.split, cfg.device, cfg.name,
                                 diagnostics if cfg.submanifold else None,
                                 cfg.recalibrate_batchnorm)
    config_path = run_config(ckpt)
    out = Path(cfg.out or (config_path.parent if config_path else ckpt.parent) / "evaluation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    table = markdown_table([record])
    out.with_suffix(".md").write_text(table)
    print(table, end="")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return record


def _ckpt_argument(argv: list[str]) -> str | None:
    """``--ckpt_path`` from argv before the full parse (it decides the data defaults)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
        if arg == "--ckpt_path" and i + 1 < len(argv):
            return argv[i + 1]
    return None
