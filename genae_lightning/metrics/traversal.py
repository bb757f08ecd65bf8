"""Latent traversals and interpolations (dpVAE paper, Figures 5 and 6).

- :func:`latent_traversal`: start from an image's code and move one latent dimension at a time
  by -span..+span standard deviations (the paper: +/- 5), the other dimensions fixed;
- :func:`interpolate`: codes between two images, linear in the generation space z0 = g(z) and
  mapped back through g^{-1} for a decoupled prior (linear in z otherwise).

Both return images (and the latents they decode) for ``torchvision.utils.save_image``.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

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
    z = model.encode(x.reshape(1, *x.shape[-3:]).to(next(model.parameters()).device))  # (1, d)
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
    ends = model.encode(torch.stack([x_start.reshape(x_start.shape[-3:]),
                                     x_end.reshape(x_end.shape[-3:])]).to(device))  # (2, d)
    prior = getattr(model, "prior", None)
    if isinstance(prior, DecoupledPrior):
        ends = prior.to_base(ends)[0]
    t = torch.linspace(0, 1, steps, device=device)[:, None]  # (S, 1)
    path = (1 - t) * ends[0] + t * ends[1]  # (S, d)
    if isinstance(prior, DecoupledPrior):
        path = prior.from_base(path)[0]
    return model.decode(path), path


def traverse(argv: list[str]) -> Path:
    """``genae traverse``: latent traversal (and interpolation) grids of a checkpoint, as PNGs."""
    from jsonargparse import ArgumentParser
    from torchvision.utils import save_image

    from genae_lightning.checkpoint import load_method
    from genae_lightning.data import ImageDataModule
    from genae_lightning.evaluate import _ckpt_argument, saved_data

    parser = ArgumentParser(prog="genae traverse", description=traverse.__doc__)
    parser.add_argument("--ckpt_path", type=str, required=True, help="checkpoint to traverse")
    parser.add_subclass_arguments(ImageDataModule, "data", required=False,
                                  help="its data (default: the run's saved config.yaml)")
    parser.add_argument("--index", type=int, default=0, help="test image to start from")
    parser.add_argument("--dims", type=list[int] | None, default=None, help="dimensions (all)")
    parser.add_argument("--span", type=float, default=5.0, help="+/- standard deviations")
    parser.add_argument("--steps", type=int, default=11, help="images per row")
    parser.add_argument("--end_index", type=int | None, default=None,
                        help="also interpolate from --index to this test image")
    parser.add_argument("--out", type=str, default="traversal.png", help="output PNG")
    given = _ckpt_argument(argv)
    if given is not None and Path(given).is_file() and (data := saved_data(Path(given))):
        parser.set_defaults(data=data)
    cfg = parser.parse_args(argv)
    if not Path(cfg.ckpt_path).is_file():  # before asking for the data it would be read with
        parser.error(f"checkpoint {cfg.ckpt_path!r} does not exist: pass the .ckpt file a "
                     "`genae fit` run wrote (under <log dir>/checkpoints/)")
    if cfg.data is None:
        parser.error("pass the data the checkpoint was trained on, e.g. --data MNIST "
                     "--data.root ../shared/data")
    datamodule = parser.instantiate(cfg).data
    datamodule.prepare_data()
    datamodule.setup("test")
    model = load_method(cfg.ckpt_path).eval()
    x = datamodule.test_dataset[cfg.index][0]
    images, _ = latent_traversal(model, x, cfg.dims, cfg.span, cfg.steps)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.clamp(0, 1), out, nrow=cfg.steps, padding=1)
    print(f"wrote {out}")
    if cfg.end_index is not None:
        end = datamodule.test_dataset[cfg.end_index][0]
        path = out.with_name(f"{out.stem}_interpolation{out.suffix}")
        save_image(interpolate(model, x, end, cfg.steps)[0].clamp(0, 1), path, nrow=cfg.steps,
                   padding=1)
        print(f"wrote {path}")
    return out
