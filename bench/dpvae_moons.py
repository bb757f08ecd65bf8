"""Two moons: a regularised VAE with and without the decoupled prior (dpVAE paper, Figs. 1 and 3).

Trains ``--method`` (beta-VAE-H by default) twice on two moons, with the standard normal and with
the decoupled prior, same hyperparameters, MLPBackbone, 2-D latent; then draws, per model (one
column each):

1. generated samples, coloured by the log-density of the N(0, I) draw that made them;
2. the aggregate posterior q(z) in the representation space, 5 low-posterior (x) and 5
   high-posterior (+) latents marked;
3. the generation space: q pushed through g (z0 = g(z)) for the decoupled prior, the same as
   row 2 for the standard one, with N(0, I) contours;
4. the training points with the decoded low- and high-posterior latents.

    python bench/dpvae_moons.py --method beta_vae_h --steps 6000

Writes ``docs/figures/dpvae_moons_<method>.png``.
"""

import argparse
import time
from pathlib import Path

import lightning as L
import torch

from genae_lightning import methods
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import Moons
from genae_lightning.latents.aggregate import AggregatePosterior, aggregate_posterior
from genae_lightning.metrics.diagnostics import high_posterior_latents, low_posterior_latents
from genae_lightning.priors import DecoupledPrior, StandardNormal

METHODS = {  # key -> (label, class, hyperparameters)
    "beta_vae_h": ("beta-VAE", "BetaVAEH", {"beta": 4.0}),
    "beta_vae_b": ("beta-VAE-B", "BetaVAEB", {"gamma": 100.0, "capacity_max": 5.0,
                                              "capacity_steps": 4000}),
    "betatc_vae": ("beta-TCVAE", "BetaTCVAE", {"beta": 6.0, "dataset_size": 7200}),
    "factor_vae": ("FactorVAE", "FactorVAE", {"gamma": 10.0, "discriminator_hidden": [256] * 3}),
    "info_vae": ("InfoVAE", "InfoVAE", {"alpha": 0.0, "lam": 100.0}),
}
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="beta_vae_h", choices=sorted(METHODS))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--sigma", type=float, default=0.1, help="decoder standard deviation")
    parser.add_argument("--hidden", default="128,128", help="MLPBackbone widths")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=str(FIGURES), help="folder of the PNG")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def train(prior: str, dm: Moons, args: argparse.Namespace) -> L.LightningModule:
    _, class_name, kwargs = METHODS[args.method]
    L.seed_everything(args.seed, verbose=False)
    model = getattr(methods, class_name)(
        image_shape=Moons.IMAGE_SHAPE, latent_dim=2, prior=prior, sigma=args.sigma,
        backbone=MLPBackbone([int(h) for h in args.hidden.split(",")],
                             output_activation="identity"),
        optimizer=lambda p: torch.optim.Adam(p, lr=args.lr), **kwargs,
    )
    trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    print(f"{args.method} ({prior}): {args.steps} steps in {time.perf_counter() - start:.0f} s, "
          f"loss {float(trainer.callback_metrics['train/loss']):.3f}", flush=True)
    return model.eval()


def density_image(ax, log_density: torch.Tensor, span: float, title: str) -> None:
    ax.imshow(log_density.exp().numpy(), extent=(-span, span, -span, span), origin="lower",
              cmap="viridis")
    ax.set_title(title, fontsize=8)


@torch.no_grad()
def column(axes, model, q: AggregatePosterior, train_x: torch.Tensor, label: str,
           seed: int) -> None:
    """Draw one model's four panels."""
    gen = torch.Generator().manual_seed(seed)
    prior = model.prior
    decoupled = isinstance(prior, DecoupledPrior)
    base = StandardNormal(2)
    # 1. samples coloured by the generating draw's N(0, I) log-density
    z0 = base.sample(3000, gen)
    z = prior.from_base(z0)[0] if decoupled else z0
    x = model.decode(z).flatten(1)
    axes[0].scatter(x[:, 0], x[:, 1], c=base.log_prob(z0), s=2, cmap="plasma")
    axes[0].set_title(f"{label}: samples", fontsize=8)
    # 2. q(z), LP and HP latents
    lp = low_posterior_latents(prior, q, 5, 20_000, gen)
    hp = high_posterior_latents(prior, q, 5, 20_000, gen)
    span = float(torch.cat([q.sample(20_000, gen).abs().quantile(0.995)[None],
                            torch.tensor([3.5])]).max()) + 0.5
    axis = torch.linspace(-span, span, 200)
    grid = torch.cartesian_prod(axis, axis).flip(1)  # x fastest: image rows are y
    density_image(axes[1], q.log_prob(grid).view(200, 200), span, "q(z) (representation)")
    for ax, pts in ((axes[1], (lp, hp)),):
        ax.scatter(pts[0][:, 0], pts[0][:, 1], marker="x", c="red", s=25)
        ax.scatter(pts[1][:, 0], pts[1][:, 1], marker="+", c="orange", s=60)
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    # 3. generation space: q pushed through g, N(0, I) contours
    span0 = 4.0
    axis0 = torch.linspace(-span0, span0, 200)
    grid0 = torch.cartesian_prod(axis0, axis0).flip(1)
    if decoupled:
        z_of_grid, logdet = prior.from_base(grid0)
        log_q0 = q.log_prob(z_of_grid) + logdet  # change of variables
        marks = (prior.to_base(lp)[0], prior.to_base(hp)[0])
    else:
        log_q0, marks = q.log_prob(grid0), (lp, hp)
    density_image(axes[2], log_q0.view(200, 200), span0,
                  "q(z0), z0 = g(z) (generation)" if decoupled else "generation space = z")
    axes[2].contour(axis0, axis0, base.log_prob(grid0).view(200, 200), levels=5, colors="w",
                    linewidths=0.5)
    axes[2].scatter(marks[0][:, 0], marks[0][:, 1], marker="x", c="red", s=25)
    axes[2].scatter(marks[1][:, 0], marks[1][:, 1], marker="+", c="orange", s=60)
    axes[2].set_xlim(-span0, span0)
    axes[2].set_ylim(-span0, span0)
    # 4. training data with decoded LP / HP latents
    axes[3].scatter(train_x[:, 0], train_x[:, 1], s=1, c="lightgray")
    x_lp, x_hp = model.decode(lp).flatten(1), model.decode(hp).flatten(1)
    axes[3].scatter(x_lp[:, 0], x_lp[:, 1], marker="x", c="red", s=25, label="low posterior")
    axes[3].scatter(x_hp[:, 0], x_hp[:, 1], marker="+", c="orange", s=60, label="high posterior")
    axes[3].legend(fontsize=6, loc="lower left")
    axes[3].set_title("data space", fontsize=8)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dm = Moons(n_samples=10_000, noise=0.05, standardize=True, batch_size=128, seed=args.seed)
    dm.prepare_data()
    dm.setup("fit")
    train_x = torch.stack([dm.train_dataset[i][0] for i in range(len(dm.train_dataset))])
    train_x = train_x.flatten(1)
    label = METHODS[args.method][0]
    fig, axes = plt.subplots(4, 2, figsize=(6, 11.5))
    for col, prior in enumerate(("standard", "decoupled")):
        model = train(prior, dm, args)
        q = aggregate_posterior(model, dm.train_dataloader(), max_points=5000)
        name = label.replace("VAE", "dpVAE", 1) if prior == "decoupled" else label
        column(axes[:, col], model, q, train_x, name, args.seed)
    fig.suptitle(f"two moons, {label} vs its decoupled-prior version ({args.steps} steps)",
                 fontsize=9)
    fig.tight_layout()
    out = Path(args.out) / f"dpvae_moons_{args.method}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
