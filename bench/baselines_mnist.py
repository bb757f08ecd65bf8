"""Short MNIST runs of every baseline of issue #6 (plus AE/VAE/InjFlow for orientation).

Each method trains for a fixed, short budget on real MNIST with a thin ConvBackbone, then is
evaluated with ``genae evaluate`` (classifier FID of test reconstructions and of samples from the
method's prior, a post-hoc Gaussian and a post-hoc 10-component GMM; 5-NN accuracy; test SSE) and
summarised with ``genae report``. FID features come from a small MNIST classifier trained once
with ``genae train-features`` ("classifier FID": not comparable with the papers' Inception FID).
Without the evaluation commands (or with --no_eval) only the validation reconstruction MSE is
reported.

    python bench/baselines_mnist.py --data_root data --steps 200 --width 0.125

Writes ``<out>/<method>/`` (CSV logs, last.ckpt, evaluation.json) and ``<out>/report.md``.
"""

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from genae_lightning import methods
from genae_lightning.backbones import ConvBackbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.data import MNIST

# key -> (row label, class name, hyperparameters): configs/<key>_mnist.yaml's unless noted
BASELINES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ae": ("AE", "AE", {}),
    "ae_l2": ("AE+L2", "AEL2", {"l2_weight": 0.01}),
    "ae_sn": ("AE+SN", "AESN", {}),
    "cae": ("CAE", "CAE", {"jac_weight": 0.1}),
    "rae_l2": ("RAE-L2", "RAE", {"regularizer": "l2", "beta": 0.01, "lam": 0.001}),
    "rae_gp": ("RAE-GP", "RAE", {"regularizer": "gp", "beta": 0.01, "lam": 0.001}),
    "wae_mmd": ("WAE-MMD", "WAEMMD", {"lam": 10.0, "kernel": "imq"}),
    "wae_gan": ("WAE-GAN", "WAEGAN", {"lam": 1.0, "discriminator_optimizer": partial(
        torch.optim.Adam, lr=5e-4, betas=(0.5, 0.999))}),
    "vampprior": ("VampPrior", "VampPrior", {"num_pseudo_inputs": 100}),  # configs: 500
    "vae": ("VAE", "VAE", {"sigma": 1.0}),
    "beta_vae": ("beta-VAE", "VAE", {"sigma": 0.1}),
    "injflow": ("InjFlow", "InjFlow", {"bound": "linear", "prior_weight": 0.01}),
    "injflow_ln": ("InjFlow-ln", "InjFlow", {"bound": "log", "prior_weight": 0.01}),
}
DEFAULT = [key for key in BASELINES if not key.startswith("injflow")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", default="data", help="holds MNIST/raw")
    parser.add_argument("--out", default="outputs/bench_baselines", help="output folder")
    parser.add_argument("--methods", default=",".join(DEFAULT),
                        help=f"comma-separated keys of {list(BASELINES)} (default: no InjFlow)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per method")
    parser.add_argument("--width", type=float, default=0.125, help="ConvBackbone width")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--latent_dim", type=int, default=32)
    parser.add_argument("--eval_samples", type=int, default=2000,
                        help="test images and samples per sampler for FID")
    parser.add_argument("--knn_train_samples", type=int, default=10000)
    parser.add_argument("--prior_samples", type=int, default=10000,
                        help="training codes the post-hoc Gaussian/GMM are fitted to")
    parser.add_argument("--feature", default=None,
                        help="classifier from `genae train-features` (trained here if absent)")
    parser.add_argument("--no_eval", action="store_true", help="train and report val MSE only")
    parser.add_argument("--reuse", action="store_true",
                        help="skip methods already trained in --out (their train.json exists)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def train(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one baseline; returns its row (validation MSE, time) and checkpoint path."""
    label, class_name, kwargs = BASELINES[key]
    run_dir = Path(args.out) / key
    if args.reuse and (run_dir / "train.json").is_file():
        return json.loads((run_dir / "train.json").read_text())
    L.seed_everything(args.seed, verbose=False)
    model = getattr(methods, class_name)(
        image_shape=MNIST.IMAGE_SHAPE, latent_dim=args.latent_dim,
        backbone=ConvBackbone(preset="mnist", width=args.width), **kwargs,
    )
    data = MNIST(root=args.data_root, batch_size=args.batch_size, seed=args.seed)
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0),
        FitLatentPrior(n_components=10, max_samples=args.prior_samples),
    ]
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=args.steps, val_check_interval=args.steps,
        check_val_every_n_epoch=None, limit_val_batches=20, num_sanity_val_steps=0,
        logger=CSVLogger(run_dir, name="", version=""), callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=50,
        default_root_dir=run_dir,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    val_mse = float(trainer.callback_metrics["val/rec_mse"])
    print(f"{label}: val/rec_mse {val_mse:.5f} after {trainer.global_step} steps, {seconds:.0f} s")
    row = {"key": key, "label": label, "val_rec_mse": val_mse, "steps": trainer.global_step,
           "seconds": round(seconds, 1), "ckpt": str(run_dir / "checkpoints" / "last.ckpt")}
    (run_dir / "train.json").write_text(json.dumps(row, indent=2) + "\n")
    return row


def evaluate(row: dict[str, Any], feature: str, args: argparse.Namespace) -> None:
    from genae_lightning.cli import main

    out = Path(args.out) / row["key"] / "evaluation.json"
    main(["evaluate", "--ckpt_path", row["ckpt"], "--data", "MNIST",
          "--data.root", args.data_root, "--feature", feature, "--num_samples",
          str(args.eval_samples), "--knn_train_samples", str(args.knn_train_samples),
          "--name", row["label"], "--out", str(out), "--progress", "false", "--device", "cpu"])
    record = json.loads(out.read_text())
    record["val_rec_mse"], record["train_seconds"] = row["val_rec_mse"], row["seconds"]
    out.write_text(json.dumps(record, indent=2) + "\n")


def mse_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| Method | Steps | val rec MSE | train s |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['steps']} | {r['val_rec_mse']:.5f} | {r['seconds']:.0f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.methods.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(BASELINES))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {sorted(BASELINES)}")
    rows = [train(key, args) for key in keys]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "val_mse.md").write_text(mse_table(rows))
    print(mse_table(rows))
    try:
        from genae_lightning.cli import COMMANDS
    except ImportError:
        COMMANDS = {}
    if args.no_eval or not {"evaluate", "report", "train-features"} <= set(COMMANDS):
        print("no evaluation: `genae evaluate/report/train-features` unavailable or --no_eval")
        return
    from genae_lightning.cli import main as genae

    feature = args.feature or str(Path(args.out) / "mnist_classifier.pt")
    if not Path(feature).is_file():
        genae(["train-features", "--data", "MNIST", "--data.root", args.data_root,
               "--epochs", "1", "--out", feature])
    for row in rows:
        evaluate(row, feature, args)
    genae(["report", *(str(Path(args.out) / r["key"] / "evaluation.json") for r in rows),
           "--out", str(Path(args.out) / "report")])


if __name__ == "__main__":
    main()
