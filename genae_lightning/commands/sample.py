"""``genae sample``: decode samples of a checkpoint's prior into a PNG grid."""

import argparse
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from genae_lightning.commands.checkpoints import load_checkpoint, resolve_device

# Most images `genae sample` puts in one grid: 10,000 is a 100 x 100 grid (2,900 px square for
# 28 x 28 digits, 6,500 px for 64 x 64 images), already beyond what a viewer shows; more only
# costs memory (the decoded images are held for the grid) and time.
MAX_SAMPLES = 10_000
# Samples decoded at a time, so memory follows the grid, not the decoder's activations.
SAMPLE_BATCH = 1_000


def _grid_path(out: str, parser: argparse.ArgumentParser) -> Path:
    """``--out`` as a file: a folder (trailing slash or existing) gets ``samples.png``."""
    path = Path(out)
    if out.endswith(("/", "\\")) or path.is_dir():
        return path / "samples.png"
    Image.init()
    known = Image.registered_extensions()
    if path.suffix.lower() not in known:
        what = f"extension {path.suffix!r}" if path.suffix else "no file extension"
        parser.error(f"--out {out!r} has {what}: pass a file name ending in .png (or .jpg, "
                     f".webp, ...), or a folder ending in '/' to write <folder>/samples.png")
    return path


def sample(argv: list[str]) -> Path:
    """``genae sample``: decode samples of a checkpoint's prior into a PNG grid."""
    parser = argparse.ArgumentParser(prog="genae sample", description=sample.__doc__)
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `genae fit`")
    parser.add_argument("--n", type=int, default=64,
                        help=f"number of samples (1 to {MAX_SAMPLES:,}, one grid)")
    parser.add_argument("--prior", choices=["standard", "gaussian", "gmm"], default="gmm",
                        help="the method's own prior or a post-hoc prior fitted after training")
    parser.add_argument("--out", default="samples.png",
                        help="output image path; a folder (ending in '/') gets samples.png")
    parser.add_argument("--nrow", type=int, default=8, help="images per row of the grid")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    parser.add_argument("--device", default="auto",
                        help="torch device, e.g. cpu or cuda; auto: a GPU when there is one")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= MAX_SAMPLES:
        parser.error(f"--n must be between 1 and {MAX_SAMPLES:,} (one grid; larger grids are "
                     f"not viewable), got {args.n:,}; for more samples run several seeds")
    if args.nrow < 1:
        parser.error(f"--nrow must be >= 1 (images per row of the grid), got {args.nrow}")
    out = _grid_path(args.out, parser)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    model = load_checkpoint(args.ckpt_path, device).model.eval()
    generator = torch.Generator().manual_seed(args.seed)
    batches = []
    try:
        for start in range(0, args.n, SAMPLE_BATCH):
            images = model.sample(min(SAMPLE_BATCH, args.n - start), prior=args.prior,
                                  generator=generator)
            # as save_image quantises, per batch: the grid is held as bytes, not floats
            batches.append(images.float().clamp(0, 1).mul(255).add(0.5).clamp(0, 255)
                           .to(torch.uint8).cpu())
    except RuntimeError as err:
        parser.exit(2, f"genae sample: error: {err}\n")
    grid = make_grid(torch.cat(batches), nrow=args.nrow, padding=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out)
    print(f"wrote {args.n} samples from the {args.prior!r} prior to {out}")
    return out
