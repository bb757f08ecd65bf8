"""Every figure the package draws: traversal and interpolation grids, leakage curves, spectra.

- :func:`latent_traversal`: start from an image's code and move one latent dimension at a time
  by -span..+span standard deviations (dpVAE paper, Figure 6: +/- 5), the other dimensions fixed;
- :func:`interpolate`: codes between two images, linear in the generation space z0 = g(z) and
  mapped back through g^{-1} for a decoupled prior (linear in z otherwise; Figure 5);
- :func:`plot_leakage`: LS(tau) curves of the submanifold diagnostics (dpVAE paper, Figure 4);
- :func:`plot_spectrum`: InjFlow's decoder-Jacobian singular values over training.

The grids return images (and the latents they decode) for ``torchvision.utils.save_image``;
matplotlib is imported only by the functions that draw with it.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from genae_lightning.functional.precision import to_module
from genae_lightning.priors import DecoupledPrior, Prior


@torch.no_grad()
def prior_std(prior: Prior, n: int = 10_000, seed: int = 0) -> Tensor:
    """Per-dimension standard deviation of the prior, (d,), from n samples (1 for N(0, I))."""
    return prior.sample(n, generator=torch.Generator(device=prior.device).manual_seed(seed)).std(0)


@torch.no_grad()
def latent_traversal(
    model: nn.Module,
    x: Tensor,
    dims: Sequence[int] | None = None,
    span: float = 5.0,
    steps: int = 11,
    std: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Decode one image's code with each dimension in ``dims`` swept over +/- span std.

    Args:
        model: A trained method with ``encode`` and ``decode`` (and ``prior`` when std is None).
        x: One image, shape (C, H, W) or (1, C, H, W).
        dims: Latent dimensions to sweep (all when None), one grid row each.
        span: Half-width of the sweep in standard deviations (the paper: 5).
        steps: Images per row (odd, so the middle one is the unchanged code).
        std: Per-dimension standard deviations (d,); the prior's (:func:`prior_std`) when None.

    Returns:
        Images (len(dims) * steps, C, H, W), row-major, and their latents (len(dims) * steps, d).
    """
    if steps < 2 or span <= 0:
        raise ValueError(f"need steps >= 2 and span > 0, got steps={steps}, span={span}")
    z = model.encode(to_module(x.reshape(1, *x.shape[-3:]), model))  # (1, d)
    d = z.shape[1]
    dims = list(range(d)) if dims is None else list(dims)
    if any(not 0 <= k < d for k in dims):
        raise ValueError(f"dims must lie in [0, {d}), got {dims}")
    std = (prior_std(model.prior) if std is None else std).to(z)
    offsets = torch.linspace(-span, span, steps, device=z.device)  # (S,)
    codes = z.repeat(len(dims) * steps, 1).view(len(dims), steps, d)
    for row, k in enumerate(dims):
        codes[row, :, k] += offsets * std[k]
    codes = codes.view(-1, d)
    return model.decode(codes), codes


@torch.no_grad()
def interpolate(
    model: nn.Module, x_start: Tensor, x_end: Tensor, steps: int = 10
) -> tuple[Tensor, Tensor]:
    """Decode ``steps`` codes between two images' codes, endpoints included.

    The path is linear in z0 = g(z) and mapped through g^{-1} for a decoupled prior (so it bends
    around the aggregate posterior's pockets), and linear in z otherwise.

    Returns:
        Images (steps, C, H, W) and latents (steps, d) in the representation space.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    device = next(model.parameters()).device
    ends = model.encode(to_module(torch.stack([x_start.reshape(x_start.shape[-3:]),
                                               x_end.reshape(x_end.shape[-3:])]), model))  # (2, d)
    prior = getattr(model, "prior", None)
    if isinstance(prior, DecoupledPrior):
        ends = prior.to_base(ends)[0]
    t = torch.linspace(0, 1, steps, device=device)[:, None]  # (S, 1)
    path = (1 - t) * ends[0] + t * ends[1]  # (S, d)
    if isinstance(prior, DecoupledPrior):
        path = prior.from_base(path)[0]
    return model.decode(path), path


def plot_leakage(
    curves: dict[str, tuple[Sequence[float], Tensor]], path: str | Path, title: str = ""
) -> Path:
    """Save LS(tau) curves ``{label: (thresholds, scores)}`` as a PNG (the paper's Figure 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (taus, scores) in curves.items():
        dashed = "dp" not in label.lower()
        ax.plot(list(taus), scores.tolist(), "--o" if dashed else "-o", label=label, ms=3)
    ax.set_xlabel(r"threshold $\tau$ on $\log p(h(z))$")
    ax.set_ylabel(r"leakage score LS($\tau$)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_spectrum(
    steps: list[int], quantiles: list[Tensor], eta: float, title: str = "", path: Path | None = None
) -> Tensor:
    """Plot the singular-value spectrum of J_g over training; returns the image (3, H, W) in [0, 1].

    Args:
        steps: Training step of each spectrum.
        quantiles: Per step, a (3, d) tensor: the 10%, 50% and 90% quantiles over examples of
            the i-th largest singular value. Medians are drawn for every step (colour = step),
            the 10-90% band for the last one.
        eta: Injectivity threshold, drawn as a dashed line.
        title: Figure title.
        path: Where to save the PNG (not saved when None).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    cmap = plt.get_cmap("viridis")
    top = max(steps[-1], 1)
    for step, q in zip(steps, quantiles, strict=True):
        index = range(1, q.shape[1] + 1)
        ax.plot(index, q[1].numpy(), color=cmap(step / top), lw=1.2)
    last = quantiles[-1]
    ax.fill_between(range(1, last.shape[1] + 1), last[0].numpy(), last[2].numpy(),
                    color=cmap(1.0), alpha=0.2, label=f"10-90% over examples, step {steps[-1]}")
    ax.axhline(eta, color="crimson", ls="--", lw=1, label=f"eta = {eta:g}")
    ax.set(yscale="log", xlabel="index i (singular values in descending order)",
           ylabel="singular value s_i of J_g(h(x))", title=title)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, top)), ax=ax,
                 label="training step (median over examples)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    fig.canvas.draw()
    image = torch.from_numpy(np.asarray(fig.canvas.buffer_rgba()).copy())  # (H, W, 4) uint8
    plt.close(fig)
    return image[..., :3].permute(2, 0, 1).float() / 255.0
