"""Short MNIST runs of VAEs with and without the decoupled prior (dpVAE paper, Table 1 and Fig. 4).

Trains, for the same short fixed budget and the same hyperparameters, each chosen method with
``prior=StandardNormal()`` and ``prior=DecoupledPrior()`` on real MNIST (2-D latent, as the
authors' MNIST configs), then reports for each:

- FID of 5k prior samples and LP-FID of the 5k lowest-q(z) of 50k prior samples, in the features
  of a small MNIST classifier ("classifier FID", not comparable with the paper's Inception FID);
- sKL = KL(p||q) + KL(q||p) by sampling (5k samples), q(z) the mixture of 10k training posteriors;
- NLL (nats) by importance sampling, k draws from q(z|x) per test image;
- leakage scores LS(tau) (curve: docs/figures/dpvae_mnist_leakage.png).

Also saves sample grids and, for 2-D latents, q(z) with LP/HP points (docs/figures/).

    python bench/dpvae_mnist.py --data_root data --steps 2000
"""

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchvision.utils import save_image

from genae_lightning import methods
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import MNIST
from genae_lightning.latents.aggregate import aggregate_posterior
from genae_lightning.methods import load_method
from genae_lightning.metrics import FID
from genae_lightning.metrics.diagnostics import (
    DiagnosticsConfig,
    default_thresholds,
    high_posterior_latents,
    leakage_scores,
    low_posterior_latents,
    submanifold_metrics,
)
from genae_lightning.plots import plot_leakage
from genae_lightning.priors import DecoupledPrior, StandardNormal

# key -> (row labels with the standard / decoupled prior, class, shared hyperparameters)
METHODS: dict[str, tuple[tuple[str, str], str, dict[str, Any]]] = {
    "vae": (("VAE", "dpVAE"), "VAE", {}),
    "beta_vae_h": (("beta-VAE-H", "beta-dpVAE-H"), "BetaVAEH", {"beta": 4.0}),
    "betatc_vae": (("beta-TCVAE", "beta-TC-dpVAE"), "BetaTCVAE",
                   {"beta": 6.0, "dataset_size": 54_000}),
    "info_vae": (("InfoVAE", "Info-dpVAE"), "InfoVAE", {"alpha": 0.0, "lam": 1000.0}),
}
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", default="data", help="holds MNIST/raw")
    parser.add_argument("--out", default="outputs/bench_dpvae_mnist", help="output folder")
    parser.add_argument("--methods", default="vae,betatc_vae", help="comma-separated keys")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per run")
    parser.add_argument("--latent_dim", type=int, default=2)
    parser.add_argument("--sigma", type=float, default=0.3, help="decoder standard deviation")
    parser.add_argument("--hidden", default="512,256", help="MLPBackbone widths")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--eval_samples", type=int, default=5000, help="samples per FID")
    parser.add_argument("--nll_k", type=int, default=250, help="importance samples per image")
    parser.add_argument("--nll_examples", type=int, default=500, help="test images for the NLL")
    parser.add_argument("--feature", default=None,
                        help="classifier from `genae train-features` (trained here if absent)")
    parser.add_argument("--figures", default=str(FIGURES), help="where the PNGs go")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate the checkpoints of an earlier run in --out, no training")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def data(args: argparse.Namespace) -> MNIST:
    dm = MNIST(root=args.data_root, batch_size=args.batch_size, seed=args.seed)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def train(key: str, prior: str, args: argparse.Namespace) -> tuple[L.LightningModule, dict]:
    """Train one (method, prior) pair for ``args.steps`` steps (or reload it with --reuse)."""
    labels, class_name, kwargs = METHODS[key]
    name = labels[prior == "decoupled"]
    ckpt = Path(args.out) / f"{key}_{prior}.ckpt"
    if args.reuse:
        info = json.loads(ckpt.with_suffix(".json").read_text())
        return load_method(ckpt).eval(), {**info, "label": name}
    L.seed_everything(args.seed, verbose=False)
    model = getattr(methods, class_name)(
        image_shape=MNIST.IMAGE_SHAPE, latent_dim=args.latent_dim, sigma=args.sigma,
        prior=DecoupledPrior() if prior == "decoupled" else StandardNormal(),
        backbone=MLPBackbone(hidden=[int(h) for h in args.hidden.split(",")]),
        optimizer=lambda p: torch.optim.Adam(p, lr=args.lr), **kwargs,
    )
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=args.steps, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data(args))
    seconds = time.perf_counter() - start
    print(f"{name}: {trainer.global_step} steps in {seconds:.0f} s, "
          f"loss {float(trainer.callback_metrics['train/loss']):.2f}", flush=True)
    info = {"label": name, "key": key, "prior": prior, "steps": trainer.global_step,
            "train_seconds": round(seconds, 1)}
    trainer.save_checkpoint(ckpt)
    ckpt.with_suffix(".json").write_text(json.dumps(info) + "\n")
    return model.eval(), info


def classifier(args: argparse.Namespace) -> str:
    """Path of the FID feature classifier: ``--feature`` or one trained here (1 epoch)."""
    if args.feature:
        return args.feature
    path = Path(args.out) / "mnist_classifier.pt"
    if not path.is_file():
        from genae_lightning.commands.train_features import train_classifier

        model, acc = train_classifier(data(args), epochs=1, seed=args.seed, progress=False)
        model.save(path, test_accuracy=acc)
        print(f"feature classifier: test accuracy {acc:.4f} -> {path}", flush=True)
    return str(path)


def prior_batches(model: L.LightningModule, n: int, seed: int, batch: int = 500):
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch):
        yield model.sample(min(batch, n - start), generator=gen)


def plot_latents(model, q, path: Path, title: str, seed: int) -> None:
    """2-D latents: log q(z) on a grid, 5 LP (x) and 5 HP (+) points, log p(z) contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        span = q.sample(20_000, gen).abs().quantile(0.99).item() * 1.2
        axis = torch.linspace(-span, span, 200)
        grid = torch.cartesian_prod(axis, axis).flip(1)  # x fastest: image rows are y
        log_q = q.log_prob(grid).view(200, 200)
        log_p = model.prior.log_prob(grid).view(200, 200)
        lp = low_posterior_latents(model.prior, q, 5, 5000, gen)
        hp = high_posterior_latents(model.prior, q, 5, 5000, gen)
    fig, ax = plt.subplots(figsize=(4, 4))
    top = float(log_q.max())
    ax.imshow(log_q.clamp_min(top - 10).numpy(), extent=(-span, span, -span, span),
              origin="lower", cmap="viridis")  # log q(z), 10 nats of range
    top_p = float(log_p.max())
    ax.contour(axis.numpy(), axis.numpy(), log_p.numpy(), colors="w", linewidths=0.5,
               levels=[top_p - 8, top_p - 4, top_p - 2, top_p - 1])
    ax.scatter(lp[:, 0], lp[:, 1], marker="x", c="red", label="low posterior")
    ax.scatter(hp[:, 0], hp[:, 1], marker="+", c="orange", s=80, label="high posterior")
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(model, row: dict, fid: FID, dm: MNIST, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    row[f"{fid.prefix}/prior"] = fid.score(prior_batches(model, args.eval_samples, args.seed))
    config = DiagnosticsConfig(q_points=10_000, skl_samples=5000, nll_k=args.nll_k,
                               nll_examples=args.nll_examples, lp_samples=args.eval_samples,
                               lp_candidates=10 * args.eval_samples, seed=args.seed)
    row.update(submanifold_metrics(model, dm.train_dataloader(), dm.test_dataloader(), fid,
                                   config))
    q = aggregate_posterior(model, dm.train_dataloader(), 10_000)
    taus = default_thresholds(args.latent_dim)
    row["leakage"] = (taus, leakage_scores(model.prior, q, taus, 5000,
                                           torch.Generator().manual_seed(args.seed)).tolist())
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    stem = f"dpvae_mnist_{row['key']}_{row['prior']}"
    gen = torch.Generator().manual_seed(args.seed)
    save_image(model.sample(64, generator=gen), figures / f"{stem}_samples.png", nrow=8)
    lp = low_posterior_latents(model.prior, q, 64, 50_000, gen)
    save_image(model.decode(lp), figures / f"{stem}_lp_samples.png", nrow=8)
    if args.latent_dim == 2:
        plot_latents(model, q, figures / f"{stem}_latents.png", row["label"], args.seed)
    row["eval_seconds"] = round(time.perf_counter() - start, 1)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| Method | steps | FID | LP-FID | sKL | NLL (nats) | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['steps']} | {r['cfid/prior']:.2f} | "
                     f"{r['cfid/low_posterior']:.2f} | {r['skl']:.2f} | {r['nll']:.1f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.methods.split(",") if k.strip()]
    if unknown := sorted(set(keys) - set(METHODS)):
        raise SystemExit(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dm = data(args)
    fid = FID(classifier(args), cache_dir=out / "fid_cache", input_img_size=(3, 28, 28),
              progress=False)
    test_images = torch.stack([dm.test_dataset[i][0] for i in range(args.eval_samples)])
    fid.set_real(test_images.split(500))  # the real set of every FID below
    rows = []
    for key in keys:
        for prior in ("standard", "decoupled"):
            model, row = train(key, prior, args)
            rows.append(evaluate(model, row, fid, dm, args))
            print(table(rows[-1:]), flush=True)
    curves = {r["label"]: (r["leakage"][0], torch.tensor(r["leakage"][1])) for r in rows}
    plot_leakage(curves, Path(args.figures) / "dpvae_mnist_leakage.png",
                 f"MNIST, d={args.latent_dim}, {args.steps} steps")
    (out / "results.json").write_text(json.dumps(
        {"args": vars(args), "rows": rows}, indent=2, default=str) + "\n")
    (out / "report.md").write_text(table(rows))
    print(table(rows))
    for r in rows:
        finite = [(t, s) for t, s in zip(*r["leakage"], strict=True) if not math.isnan(s)]
        print(r["label"], "LS(tau):", ", ".join(f"{t:.1f}: {s:.3f}" for t, s in finite))


if __name__ == "__main__":
    main()
