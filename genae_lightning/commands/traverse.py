"""``genae traverse``: latent traversal (and interpolation) grids of a checkpoint, as PNGs."""

from pathlib import Path

from jsonargparse import ArgumentParser
from torchvision.utils import save_image

from genae_lightning.commands.checkpoints import (
    add_checkpoint_and_data,
    load_checkpoint,
    parse_checkpoint_and_data,
)
from genae_lightning.plots import interpolate, latent_traversal


def traverse(argv: list[str]) -> Path:
    """``genae traverse``: latent traversal (and interpolation) grids of a checkpoint, as PNGs."""
    parser = ArgumentParser(prog="genae traverse", description=traverse.__doc__)
    add_checkpoint_and_data(parser, "traverse")
    parser.add_argument("--index", type=int, default=0, help="test image to start from")
    parser.add_argument("--dims", type=list[int] | None, default=None, help="dimensions (all)")
    parser.add_argument("--span", type=float, default=5.0, help="+/- standard deviations")
    parser.add_argument("--steps", type=int, default=11, help="images per row")
    parser.add_argument("--end_index", type=int | None, default=None,
                        help="also interpolate from --index to this test image")
    parser.add_argument("--out", type=str, default="traversal.png", help="output PNG")
    cfg, datamodule = parse_checkpoint_and_data(parser, argv)
    datamodule.prepare_data()
    datamodule.setup("test")
    size = len(datamodule.test_dataset)
    for flag, index in (("--index", cfg.index), ("--end_index", cfg.end_index)):
        if index is not None and not 0 <= index < size:
            parser.error(f"{flag} {index} is out of range: the test split of "
                         f"{type(datamodule).__name__} has {size} images, so it takes 0 to "
                         f"{size - 1}")
    model = load_checkpoint(cfg.ckpt_path, cfg.device).model.eval()
    x = datamodule.test_dataset[cfg.index][0]
    images, _ = latent_traversal(model, x, cfg.dims, cfg.span, cfg.steps)
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
