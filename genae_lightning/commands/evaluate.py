"""``genae evaluate``: every metric of one checkpoint, as JSON and a one-row markdown table.

The data comes from ``--data`` (a DataModule short name or class path plus ``--data.<arg>``) or,
by default, from the ``config.yaml`` that ``genae fit`` saved in the run's log dir next to the
checkpoint; ``--data.<arg>`` alone overrides single arguments of that saved data (e.g. ``root``).
"""

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from genae_lightning import __version__
from genae_lightning.commands.checkpoints import (
    add_checkpoint_and_data,
    load_checkpoint,
    parse_checkpoint_and_data,
    resolve_device,
)
from genae_lightning.commands.report import markdown_table
from genae_lightning.commands.run_folders import checkpoint_run_folder
from genae_lightning.data import ImageDataModule
from genae_lightning.features.extractors import check_feature_argument
from genae_lightning.latents import SAMPLERS, batchnorm
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative
from genae_lightning.metrics.diagnostics import DiagnosticsConfig, dataset_submanifold_metrics


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
        device: Torch device for the model and the features ("auto": a GPU when present).
        name: Row label in tables (default: the method's class name).
        submanifold: Also the dpVAE diagnostics of VAE-like methods (``skl``, ``nll``,
            ``fid/low_posterior``, ``leakage/<tau>``) with these sample counts.
        recalibrate_batchnorm: First recompute the BatchNorm running statistics over this many
            training batches, of the data's training batch size, shuffled with
            ``config.seed`` (see :func:`~genae_lightning.latents.recalibrate_batchnorm`); the
            post-hoc priors of the checkpoint are then refitted here, since the codes change.
            0 uses the statistics ``FitLatentPrior`` checked at the end of fit, or runs that
            check here on checkpoints that were not checked (it says what it did; the
            record is the JSON's ``batchnorm``).
    """
    config = config or MetricsConfig()
    start = time.perf_counter()
    device = resolve_device(device)
    loaded = load_checkpoint(ckpt_path, device)
    path, model, step = loaded.path, loaded.model, loaded.global_step
    had_priors = sorted(model.posthoc_priors.keys())
    datamodule.prepare_data()
    datamodule.setup("test")
    evaluation = getattr(datamodule, f"{split}_dataset", None)
    if evaluation is None:
        raise ValueError(f"{type(datamodule).__name__} has no {split}_dataset after setup; "
                         "evaluate on --split test or --split val")
    bn = batchnorm.settle_for_evaluation(  # training batches, at the training batch size
        model, datamodule.train_dataset, datamodule.val_dataset, datamodule.batch_size,
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
        "fid_feature": None if fid is None else fid.feature_id,
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
    add_checkpoint_and_data(parser, "evaluate")
    parser.add_argument("--fid_feature", type=str, default="inception",
                        help="FID features: 'inception' or a `genae train-features` file")
    parser.add_argument("--feature", type=str | None, default=None,
                        help="deprecated name of --fid_feature")
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
    parser.add_argument("--cache_dir", type=str | None, default=None,
                        help="cached real statistics (default ~/.cache/genae_lightning/fid)")
    parser.add_argument("--name", type=str | None, default=None,
                        help="row label (default: the method's class name)")
    parser.add_argument("--out", type=str | None, default=None,
                        help="output JSON (default: evaluation.json in the checkpoint's run "
                             "folder, the one above its checkpoints/); the markdown row goes "
                             "beside it (.md)")
    parser.add_argument("--progress", type=bool, default=True, help="show progress bars")
    parser.add_argument("--submanifold", type=bool, default=False,
                        help="VAE-like methods: also skl, nll, fid/low_posterior, leakage/<tau>")
    parser.add_argument("--recalibrate_batchnorm", type=int, default=0,
                        help="first recompute BatchNorm running statistics over this many training "
                        "batches (and refit the post-hoc priors); 0: the checkpoint as saved")
    parser.add_argument("--nll_k", type=int, default=1000,
                        help="importance samples per image of the --submanifold NLL")
    return parser


def fid_feature_argument(cfg: Any) -> str:
    """``--fid_feature``, or the deprecated ``--feature`` (with a warning) when that is given."""
    if cfg.feature is None:
        return cfg.fid_feature
    warnings.warn("genae evaluate --feature is deprecated: it is now named --fid_feature, as in "
                  "genae fit and the records (evaluation.json, W&B)", FutureWarning, stacklevel=2)
    return cfg.feature


def evaluate(argv: list[str]) -> dict[str, Any]:
    """``genae evaluate``: compute FID (recon, prior, gaussian, gmm), 5-NN accuracy and SSE."""
    parser = build_parser()
    cfg, datamodule = parse_checkpoint_and_data(parser, argv)
    ckpt = Path(cfg.ckpt_path)
    config = MetricsConfig(cfg.num_samples, cfg.knn_train_samples, cfg.k, tuple(cfg.samplers),
                           batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress)
    fid_feature = fid_feature_argument(cfg)
    if not cfg.no_fid:
        check_feature_argument(fid_feature, "--fid_feature")
    channels, height, width = datamodule.image_shape
    fid = None if cfg.no_fid else FID(
        fid_feature, cfg.feature_extractor_weights_path, cfg.cache_dir,
        input_img_size=(3, height, width), progress=cfg.progress,
    )
    diagnostics = DiagnosticsConfig(nll_k=cfg.nll_k, lp_samples=cfg.num_samples,
                                    batch_size=cfg.batch_size, seed=cfg.seed)
    record = evaluate_checkpoint(ckpt, datamodule, fid, config, cfg.split, cfg.device, cfg.name,
                                 diagnostics if cfg.submanifold else None,
                                 cfg.recalibrate_batchnorm)
    out = Path(cfg.out or checkpoint_run_folder(ckpt) / "evaluation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    table = markdown_table([record])
    out.with_suffix(".md").write_text(table)
    print(table, end="")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return record

