"""InjFlow study: measured gaps of the bounds (4)/(5), and penalty vs augmented Lagrangian.

Trains InjFlow at an equal number of steps per seed, all runs of a seed from the same initial
weights and data order: bound log (eq. 9) and linear (eq. 10, lambda = 1), each with

- ``penalty``: the paper's ``Penalty`` constraint (mu = mu_in = 1 + i / 1000);
- ``AL``: ``constraint=AugmentedLagrangian()`` with its defaults (kappa = 0, dual step sizes
  1e-3 / 1, moving-average decay 0.99, mu = mu_in = 1 fixed);
- ``matched`` (with ``--matched``): a control, the penalty method whose mu = mu_in grows linearly
  to 1 + the final lambda of the AL run of the same bound and seed.

``InjFlowDiagnostics`` measures the exact (1/2) ln det(J^T J), the bounds and the spectrum on a
fixed validation batch (eval mode) five times per run; at the end, ``evaluate_generative``
reports the reconstruction error on test images and classifier FID of reconstructions and of
post-hoc Gaussian / GMM samples. Prints markdown tables (docs/injflow.md) and writes
``<out>/<dataset>/results.json`` (after every run; ``--resume`` keeps finished runs) and the
spectrum PNGs.

    python bench/injflow_bounds.py --dataset digits --seeds 0 1 2 --matched
    python bench/injflow_bounds.py --dataset mnist --data-root data --seeds 0 1 2 \
        --matched

The feature classifier of classifier FID is trained first when ``--feature`` does not exist
(as ``genae train-features`` does), so the study needs no network.
"""
import argparse
import json
import math
import os
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from genae_lightning.backbones import Backbone, ConvBackbone, MLPBackbone
from genae_lightning.callbacks import InjFlowDiagnostics
from genae_lightning.commands.train_features import train_classifier
from genae_lightning.data import MNIST, Digits, ImageDataModule
from genae_lightning.latents import recalibrate_batchnorm
from genae_lightning.latents.batchnorm import recalibration_loader
from genae_lightning.methods import AugmentedLagrangian, InjFlow, Penalty
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative

BOUNDS = ("log", "linear")
# penalty: the paper's Penalty (mu = 1 + i / 1000); AL: constraint=AugmentedLagrangian();
# matched: a penalty schedule growing linearly to 1 + the AL run's final lambda (same bound, seed).
SCHEDULES = ("penalty", "AL", "matched")
PAPER_SCALE = 1000.0
GAPS = ["gap_log", "gap_linear", "gap_log_est", "gap_linear_est"]


def datamodule(args: argparse.Namespace) -> ImageDataModule:
    """The data of the study: MNIST (thin conv net) or scikit-learn's digits (quickstart MLP)."""
    if args.dataset == "mnist":
        return MNIST(root=args.data_root, batch_size=args.batch_size, seed=0, download=False)
    return Digits(batch_size=args.batch_size, seed=0)


def backbone(args: argparse.Namespace) -> Backbone:
    """ConvBackbone(mnist, width) for MNIST, MLPBackbone([256, 256]) as configs/quickstart.yaml."""
    if args.dataset == "mnist":
        return ConvBackbone(preset="mnist", width=args.width)
    return MLPBackbone(hidden=[256, 256])


def feature_file(args: argparse.Namespace, out: Path) -> Path:
    """The classifier-FID feature classifier: ``--feature``, trained here when missing."""
    path = Path(args.feature or out / f"{args.dataset}_classifier.pt")
    if not path.is_file():
        dm = datamodule(args)
        model, acc = train_classifier(dm, epochs=args.feature_epochs,
                                      num_features=args.feature_dim, progress=False)
        model.save(path, dataset=type(dm).__name__, epochs=args.feature_epochs,
                   test_accuracy=acc)
        print(f"trained feature classifier {path}: test accuracy {acc:.4f}", flush=True)
    return path


def train_one(
    args: argparse.Namespace, bound: str, schedule: str, seed: int, feature: Path, out: Path,
    scale: float | None,
) -> dict[str, Any]:
    """Train one run, return its diagnostics history and final evaluation."""
    name = f"{bound}_{schedule}_seed{seed}"
    # no scale: mu stays 1 (1 + i / inf)
    constraint = (AugmentedLagrangian() if schedule == "AL"
                  else Penalty(nu=1.0, scale=scale if scale is not None else math.inf))
    L.seed_everything(seed, verbose=False)
    model = InjFlow(image_shape=datamodule(args).image_shape, latent_dim=args.latent_dim,
                    bound=bound, constraint=constraint, prior_weight=0.01, eta=0.1, lam=1.0,
                    jvp="forward", backbone=backbone(args))
    diagnostics = InjFlowDiagnostics(every_n_steps=max(1, args.steps // 4),
                                     num_examples=args.diag_examples, probes=args.probes,
                                     save_dir=str(out / name))
    callbacks: list[L.Callback] = [diagnostics]
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, default_root_dir=str(out / name),
                        callbacks=callbacks)
    dm = datamodule(args)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_seconds = time.perf_counter() - start
    if args.recalibrate_batchnorm:  # evaluate with freshly averaged BatchNorm statistics
        loader = recalibration_loader(dm.train_dataset, args.batch_size, seed)
        recalibrate_batchnorm(model, loader, args.recalibrate_batchnorm)
    fid = FID(feature=str(feature), disk_cache=False, progress=False)
    config = MetricsConfig(num_samples=args.eval_samples, knn_train_samples=args.eval_train,
                           samplers=("gaussian", "gmm"), batch_size=256, seed=seed,
                           progress=False)
    dm.setup("test")
    evaluation = evaluate_generative(model, dm.train_dataset, dm.test_dataset, fid, config,
                                     dataset_name=args.dataset)
    result = {
        "name": name, "bound": bound, "schedule": schedule, "scale": scale, "seed": seed,
        "train_seconds": train_seconds, "history": diagnostics.history,
        "eval": evaluation.metrics, "mu": float(model.constraint.mu),
        "mu_in": float(model.constraint.mu_in),
    }
    if isinstance(constraint, AugmentedLagrangian):
        result["lambda"] = float(constraint.rec_multiplier.multiplier)
        result["lambda_in"] = float(constraint.inj_multiplier.multiplier)
    print(f"{name}: {train_seconds:.0f}s train, final diag "
          f"{ {k: round(v, 3) for k, v in diagnostics.history[-1].items() if k != 'spectrum'} }, "
          f"eval {evaluation.metrics}", flush=True)
    return result


def mean_sd(values: list[float], digits: int = 2) -> str:
    """'m' for one value, 'm ± sd' for several."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def tables(results: list[dict[str, Any]]) -> str:
    """Markdown: bound gaps (initial and final), and constraint / FID per configuration."""
    lines = ["| run | step | (1/2) ln det J^T J | gap log (5) | gap linear (4) | gap log, "
             "1-sample | gap linear, 1-sample | s_min | s_max | cond. | frac s < eta |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = ["logdet_exact", *GAPS, "sv_min", "sv_max", "condition", "frac_sv_below_eta"]
    first = results[0]["history"][0]
    lines.append(f"| init (all runs, seed {results[0]['seed']}) | 0 | "
                 + " | ".join(f"{first['diag/' + k]:.2f}" for k in keys) + " |")
    for schedule in SCHEDULES:
        for bound in BOUNDS:
            group = [r for r in results if (r["bound"], r["schedule"]) == (bound, schedule)]
            if not group:
                continue
            finals = [r["history"][-1] for r in group]
            cells = (mean_sd([f["diag/" + k] for f in finals]) for k in keys)
            lines.append(f"| {bound}, {schedule} | {finals[0]['step']} | " + " | ".join(cells)
                         + " |")
    lines += ["", "| run | test E\\|\\|x - g(h(x))\\|\\|^2 | fixed-batch constraint | "
              "frac s < eta | mu | lambda | lambda_in | FID recon | FID gaussian | FID GMM | "
              "train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for bound, schedule in ((b, s) for s in SCHEDULES for b in BOUNDS):
        group = [r for r in results if (r["bound"], r["schedule"]) == (bound, schedule)]
        if not group:
            continue
        cells = [
            mean_sd([r["eval"]["val/rec_sse"] for r in group]),
            mean_sd([r["history"][-1]["diag/constraint"] for r in group]),
            mean_sd([r["history"][-1]["diag/frac_sv_below_eta"] for r in group]),
            mean_sd([r["mu"] for r in group]),
            mean_sd([r.get("lambda", 0.0) for r in group]),
            mean_sd([r.get("lambda_in", 0.0) for r in group], 3),
            *(mean_sd([r["eval"][f"cfid/{k}"] for r in group])  # classifier FID: cfid/*
              for k in ("recon", "gaussian", "gmm")),
            mean_sd([r["train_seconds"] for r in group], 0),
        ]
        lines.append(f"| {bound}, {schedule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="digits")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--steps", type=int, default=None, help="1500 digits, 300 mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=None, help="8 digits, 32 mnist")
    parser.add_argument("--width", type=float, default=0.25, help="ConvBackbone width (mnist)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--diag-examples", type=int, default=64)
    parser.add_argument("--probes", type=int, default=16, help="J v probes per example")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--eval-train", type=int, default=5000)
    parser.add_argument("--feature", default=None, help="feature classifier file")
    parser.add_argument("--feature-epochs", type=int, default=None, help="20 digits, 1 mnist")
    parser.add_argument("--feature-dim", type=int, default=None, help="32 digits, 128 mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="outputs/injflow_bounds")
    parser.add_argument("--figures", default=None, help="copy spectrum PNGs here (docs/figures)")
    parser.add_argument("--resume", action="store_true", help="keep the runs in results.json")
    parser.add_argument("--recalibrate-batchnorm", type=int, default=0,
                        help="before the final evaluation, recompute BatchNorm statistics over "
                        "this many training batches (docs/injflow.md); 0: as trained")
    parser.add_argument("--matched", action="store_true",
                        help="also penalty runs whose mu grows linearly to 1 + the AL's lambda")
    args = parser.parse_args()
    mnist = args.dataset == "mnist"
    args.steps = args.steps or (300 if mnist else 1500)
    args.latent_dim = args.latent_dim or (32 if mnist else 8)
    args.feature_epochs = args.feature_epochs or (1 if mnist else 20)
    args.feature_dim = args.feature_dim or (128 if mnist else 32)
    torch.set_num_threads(args.threads)
    out = Path(args.out) / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    machine = (f"{platform.machine()} CPU, {os.cpu_count()} cores (torch threads "
               f"{torch.get_num_threads()}), no GPU, torch {torch.__version__}, load average at "
               f"start {os.getloadavg()[0]:.1f}")
    print(f"machine: {machine}\nargs: {vars(args)}", flush=True)
    feature = feature_file(args, out)
    saved = out / "results.json"
    done = json.loads(saved.read_text())["results"] if args.resume and saved.is_file() else []
    results = [r for r in done if r["seed"] in args.seeds]
    for seed in args.seeds:
        for schedule in SCHEDULES if args.matched else SCHEDULES[:2]:
            for bound in BOUNDS:
                if any((r["bound"], r["schedule"], r["seed"]) == (bound, schedule, seed)
                       for r in results):
                    continue
                scale = None if schedule == "AL" else PAPER_SCALE
                if schedule == "matched":  # mu at the last step = 1 + the AL run's lambda
                    al = next(r for r in results
                              if (r["bound"], r["schedule"], r["seed"]) == (bound, "AL", seed))
                    # lambda = 0 (constraint never violated): a constant mu = 1, no schedule
                    scale = (args.steps - 1) / al["lambda"] if al["lambda"] > 0 else None
                results.append(train_one(args, bound, schedule, seed, feature, out, scale))
                saved.write_text(json.dumps(  # after every run: an interrupted study keeps them
                    {"machine": machine, "args": vars(args), "results": results}, indent=1))
    if args.figures:
        for r in results:
            if r["seed"] == args.seeds[0]:
                target = Path(args.figures) / f"injflow_spectrum_{args.dataset}_{r['name']}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(out / r["name"] / "injflow_spectrum.png", target)
    print(f"\nmachine: {machine}, load average at the end {os.getloadavg()[0]:.1f}\n\n"
          f"{tables(results)}", flush=True)


if __name__ == "__main__":
    main()
