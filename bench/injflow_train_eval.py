"""Train- vs eval-mode reconstruction of InjFlow during training (BatchNorm statistics probe).

Trains InjFlow on MNIST as ``bench/injflow_bounds.py`` does (ConvBackbone width 0.25, d = 32,
batch 64, Adam 1e-3, forward-mode J v) and every ``--every`` steps prints the training loss's
reconstruction term and E||x - g(h(x))||^2 on 256 fixed validation images, with the
network in train mode (batch statistics) and in eval mode (BatchNorm running statistics).
``--method ae`` runs the plain AE on the same backbone as the reference. At the end it
recomputes the running statistics over ``--recalibrate`` training batches (the cumulative
average, no gradient: ``genae_lightning.latents.recalibrate_batchnorm``) and prints the
eval-mode error again.

    python bench/injflow_train_eval.py --data-root data --steps 1200 --bound linear
"""

import argparse
import copy

import lightning as L
import torch

from genae_lightning.backbones import ConvBackbone
from genae_lightning.data import MNIST
from genae_lightning.functional import sum_squared_error
from genae_lightning.latents import recalibrate_batchnorm
from genae_lightning.methods import AE, AugmentedLagrangian, GenerativeAutoencoder, InjFlow, Penalty


def fixed_batch_error(model: GenerativeAutoencoder, x: torch.Tensor, train_mode: bool) -> float:
    """Mean ||x - g(h(x))||^2 on ``x`` in train or eval mode; ``model`` is left untouched.

    Train mode runs on a copy, because a train-mode pass updates BatchNorm's running statistics;
    eval mode changes nothing, so it runs on the model itself (its mode is restored).
    """
    was_training = model.training
    probe = copy.deepcopy(model).train() if train_mode else model.eval()
    with torch.no_grad():
        error = sum_squared_error(x, probe.reconstruct(x)).mean().item()
    model.train(was_training)
    return error


class Probe(L.Callback):
    """Print train-mode and eval-mode errors on a fixed batch every ``every`` steps."""

    def __init__(self, x: torch.Tensor, every: int) -> None:
        self.x, self.every = x, every

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object
                           ) -> None:
        step = trainer.global_step
        if step % self.every == 0:
            metrics = trainer.callback_metrics
            rec = float(metrics["train/rec"] if "train/rec" in metrics else metrics["train/loss"])
            constraint = getattr(pl_module, "constraint", None)
            mu = float(constraint.mu) if constraint is not None else float("nan")
            print(f"| {step} | {trainer.current_epoch} | {rec:.2f} | "
                  f"{fixed_batch_error(pl_module, self.x, True):.2f} | "
                  f"{fixed_batch_error(pl_module, self.x, False):.2f} | "
                  f"{mu:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--method", choices=["injflow", "ae"], default="injflow")
    parser.add_argument("--bound", choices=["log", "linear"], default="linear")
    parser.add_argument("--constraint", choices=["penalty", "augmented_lagrangian"],
                        default="penalty")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--recalibrate", type=int, default=100, help="training batches")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    backbone = ConvBackbone(preset="mnist", width=0.25)
    model: GenerativeAutoencoder = (
        AE(image_shape=(1, 28, 28), latent_dim=32, backbone=backbone) if args.method == "ae"
        else InjFlow(image_shape=(1, 28, 28), latent_dim=32, bound=args.bound,
                     constraint=AugmentedLagrangian() if args.constraint == "augmented_lagrangian"
                     else Penalty(nu=1.0, scale=1000.0), prior_weight=0.01, eta=0.1, lam=1.0,
                     jvp="forward", backbone=backbone))
    dm = MNIST(root=args.data_root, batch_size=64, seed=0)
    dm.setup("fit")
    x = torch.stack([dm.val_dataset[i][0] for i in range(256)])
    callbacks: list[L.Callback] = [Probe(x, args.every)]
    trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=callbacks)
    print(f"{args}\n\n| step | epoch | train/rec (batch) | fixed batch, train mode | "
          "fixed batch, eval mode | mu |\n|---|---|---|---|---|---|", flush=True)
    trainer.fit(model, datamodule=dm)
    before = fixed_batch_error(model, x, False)
    recalibrate_batchnorm(model, dm.train_dataloader(), args.recalibrate)
    after = fixed_batch_error(model, x, False)
    print(f"\neval-mode error at the end: {before:.2f}; after recomputing the BatchNorm running "
          f"statistics over {args.recalibrate} training batches: {after:.2f}", flush=True)


if __name__ == "__main__":
    main()
