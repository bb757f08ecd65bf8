"""BatchNorm lag check at the end of training: errors, the decision, recalibration vs N, FID.

Trains InjFlow (linear bound, the paper's literal penalty schedule, as
``bench/injflow_train_eval.py``) or the AE on MNIST (ConvBackbone width 0.25, d = 32, batch 64,
Adam 1e-3, seed 0). Every ``--every`` steps it prints the mean reconstruction error on 256 fixed
validation images with BatchNorm's batch statistics (train mode) and running statistics (eval
mode). At the end it prints the relative difference the ``FitLatentPrior`` check compares with
its tolerance, the eval-mode error after exact recalibration over N training batches for several
N, and the classifier FID (test split) of reconstructions and of Gaussian and GMM samples with the
running (EMA) statistics, with statistics recomputed over ``--batches`` batches, and with the
automatic choice of ``settle_batchnorm``.

    python bench/batchnorm_check.py --data-root data --steps 1200 --method injflow
"""

import argparse
import copy
import json
import time
from pathlib import Path

import lightning as L
import torch

from genae_lightning.backbones import ConvBackbone
from genae_lightning.commands.train_features import train_classifier
from genae_lightning.data import MNIST
from genae_lightning.latents.batchnorm import (
    fixed_batches,
    mode_errors,
    recalibrate_batchnorm,
    recalibration_loader,
    settle_batchnorm,
)
from genae_lightning.methods import AE, GenerativeAutoencoder, InjFlow, Penalty
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative


class Probe(L.Callback):
    """Print train- and eval-mode errors on the fixed batches every ``every`` steps."""

    def __init__(self, batches: list[torch.Tensor], every: int) -> None:
        self.batches, self.every = batches, every
        self.history: list[tuple[int, float, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object
                           ) -> None:
        if trainer.global_step % self.every == 0:
            train, evaluation = mode_errors(pl_module, self.batches)
            self.history.append((trainer.global_step, train, evaluation))
            print(f"| {trainer.global_step} | {train:.2f} | {evaluation:.2f} | "
                  f"{abs(evaluation - train) / train:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--method", choices=["injflow", "ae"], default="injflow")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batches", type=int, default=100, help="recalibration batches")
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--sweep", default="5,10,25,50,100,200", help="N values to compare")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--feature", default="outputs/batchnorm_check/mnist_classifier.pt")
    parser.add_argument("--out", default="outputs/batchnorm_check")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dm = MNIST(root=args.data_root, batch_size=64, seed=0, download=False)
    feature = Path(args.feature)
    if not feature.is_file():
        classifier, acc = train_classifier(dm, epochs=1, progress=False)
        classifier.save(feature, dataset="MNIST", epochs=1, test_accuracy=acc)
        print(f"trained feature classifier {feature}: test accuracy {acc:.4f}", flush=True)
    L.seed_everything(0, verbose=False)
    backbone = ConvBackbone(preset="mnist", width=0.25)
    model: GenerativeAutoencoder = (
        AE(image_shape=(1, 28, 28), latent_dim=32, backbone=backbone) if args.method == "ae"
        else InjFlow(image_shape=(1, 28, 28), latent_dim=32, bound="linear", prior_weight=0.01,
                     eta=0.1, lam=1.0, jvp="forward", backbone=backbone,
                     constraint=Penalty(nu=1.0, scale=1000.0)))
    dm.setup("fit")
    check = fixed_batches(dm.val_dataset, 256, 64)
    probe = Probe(check, args.every)
    callbacks: list[L.Callback] = [probe]
    trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=callbacks)
    print(f"{args}\n\n| step | train mode | eval mode | relative difference |\n|---|---|---|---|",
          flush=True)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_seconds = time.perf_counter() - start

    sweep = {}
    for n in [int(v) for v in args.sweep.split(",")]:
        copy_ = copy.deepcopy(model)
        recalibrate_batchnorm(copy_, recalibration_loader(dm.train_dataset, 64, 0), n)
        sweep[n] = mode_errors(copy_, check)[1]
    print("\n| N | eval-mode error after recalibration |\n|---|---|")
    for n, error in sweep.items():
        print(f"| {n} | {error:.3f} |", flush=True)

    fid = FID(feature=str(feature), disk_cache=False, progress=False)
    config = MetricsConfig(num_samples=args.eval_samples, knn_train_samples=args.eval_samples,
                           samplers=("gaussian", "gmm"), batch_size=256, seed=0, progress=False)
    dm.setup("test")
    scores = {}
    recalibrated = copy.deepcopy(model)
    recalibrate_batchnorm(recalibrated, recalibration_loader(dm.train_dataset, 64, 0),
                          args.batches)
    auto = copy.deepcopy(model)
    record = settle_batchnorm(auto, check, recalibration_loader(dm.train_dataset, 64, 0),
                              "auto", args.tolerance, args.batches)
    assert record is not None
    for name, variant in (("EMA", model), (f"recalibrated ({args.batches})", recalibrated)):
        scores[name] = evaluate_generative(variant, dm.train_dataset, dm.test_dataset, fid,
                                           config, dataset_name="MNIST").metrics
    scores["auto"] = scores[f"recalibrated ({args.batches})" if record["recalibrated"] else "EMA"]
    print(f"\ncheck: {record}\n\n| statistics | Rec. FID | N FID | GMM FID | test Rec. SSE |\n"
          "|---|---|---|---|---|")
    for name, m in scores.items():
        print(f"| {name} | {m['cfid/recon']:.2f} | {m['cfid/gaussian']:.2f} | "  # classifier FID
              f"{m['cfid/gmm']:.2f} | {m['val/rec_sse']:.2f} |", flush=True)
    (out / f"{args.method}_{args.steps}.json").write_text(json.dumps(
        {"args": vars(args), "train_seconds": train_seconds, "history": probe.history,
         "sweep": sweep, "check": record, "scores": scores}, indent=2))


if __name__ == "__main__":
    main()
