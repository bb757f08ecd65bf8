"""``genae traverse``: latent traversal (and interpolation) grids of a checkpoint, as PNGs.

``--dims`` takes the latent dimensions to sweep, one grid row each, in any of these forms:
``--dims 0 1 2`` (separate arguments), ``--dims 0,1,2``, ``--dims [0,1,2]``; left out (or
``--dims null``), every dimension is swept.
"""

import re
from pathlib import Path

from jsonargparse import ArgumentParser
from torchvision.utils import save_image

from genae_lightning.commands.checkpoints import (
    add_checkpoint_and_data,
    load_checkpoint,
    parse_checkpoint_and_data,
)
from genae_lightning.plots import interpolate, latent_traversal

DIMS_EXAMPLE = "e.g. --dims 0 1 2 (or --dims 0,1,2)"


def parse_dims(tokens: list[str] | None) -> list[int] | None:
    """The latent dimensions ``--dims`` names; None (every dimension) when it was left out.

    Args:
        tokens: The arguments after ``--dims``: separate numbers (``["0", "1"]``), a comma list
            (``["0,1"]``), a JSON list (``["[0, 1]"]``, or split by the shell), or ``["null"]``.

    Raises:
        ValueError: A token is not a whole number, or the list is empty; the message names
            ``--dims`` and the value.
    """
    if tokens is None or [t.strip().lower() for t in tokens] in (["null"], ["none"]):
        return None
    text = " ".join(tokens).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    items = [item for item in re.split(r"[\s,]+", text) if item]
    if not items:
        raise ValueError(f"--dims {' '.join(tokens)!r} names no latent dimension: give at least "
                         f"one, {DIMS_EXAMPLE}, or leave --dims out to sweep them all")
    dims = []
    for item in items:
        try:
            dims.append(int(item))
        except ValueError:
            raise ValueError(f"--dims {item!r} is not a latent dimension: give whole numbers, "
                             f"{DIMS_EXAMPLE}") from None
    return dims


def check_dims(dims: list[int] | None, latent_dim: int) -> None:
    """Check that every dimension of ``--dims`` lies in [0, latent_dim).

    Raises:
        ValueError: One does not; the message names ``--dims``, the value and the latent dim.
    """
    for k in dims or []:
        if not 0 <= k < latent_dim:
            raise ValueError(f"--dims {k} is out of range: the checkpoint's latent dim is "
                             f"{latent_dim}, so --dims takes 0 to {latent_dim - 1}")


def traverse(argv: list[str]) -> Path:
    """``genae traverse``: latent traversal (and interpolation) grids of a checkpoint, as PNGs."""
    parser = ArgumentParser(prog="genae traverse", description=traverse.__doc__)
    add_checkpoint_and_data(parser, "traverse")
    parser.add_argument("--index", type=int, default=0, help="test image to start from")
    parser.add_argument("--dims", type=str, nargs="+", default=None,
                        help=f"latent dimensions to sweep, one row each, {DIMS_EXAMPLE}; "
                             "default: all")
    parser.add_argument("--span", type=float, default=5.0, help="+/- standard deviations")
    parser.add_argument("--steps", type=int, default=11, help="images per row")
    parser.add_argument("--end_index", type=int | None, default=None,
                        help="also interpolate from --index to this test image")
    parser.add_argument("--out", type=str, default="traversal.png", help="output PNG")
    cfg, datamodule = parse_checkpoint_and_data(parser, argv)
    try:
        dims = parse_dims(cfg.dims)
    except ValueError as err:
        parser.error(str(err))
    datamodule.prepare_data()
    datamodule.setup("test")
    size = len(datamodule.test_dataset)
    for flag, index in (("--index", cfg.index), ("--end_index", cfg.end_index)):
        if index is not None and not 0 <= index < size:
            parser.error(f"{flag} {index} is out of range: the test split of "
                         f"{type(datamodule).__name__} has {size} images, so it takes 0 to "
                         f"{size - 1}")
    model = load_checkpoint(cfg.ckpt_path, cfg.device).model.eval()
    try:
        check_dims(dims, model.latent_dim)
    except ValueError as err:
        parser.error(str(err))
    x = datamodule.test_dataset[cfg.index][0]
    images, _ = latent_traversal(model, x, dims, cfg.span, cfg.steps)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.clamp(0, 1).cpu(), out, nrow=cfg.steps, padding=1)
    print(f"wrote {out}")
    if cfg.end_index is not None:
        end = datamodule.test_dataset[cfg.end_index][0]
        path = out.with_name(f"{out.stem}_interpolation{out.suffix}")
        save_image(interpolate(model, x, end, cfg.steps)[0].clamp(0, 1).cpu(), path,
                   nrow=cfg.steps, padding=1)
        print(f"wrote {path}")
    return out
