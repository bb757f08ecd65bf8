"""The ``genae`` command: LightningCLI (fit/validate/test) plus ``genae sample``."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from torchvision.utils import make_grid

import genae_lightning.callbacks  # noqa: F401  (registers callbacks for short names)
import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
import genae_lightning.methods  # noqa: F401  (registers methods for short names)
from genae_lightning.callbacks import GracefulInterrupt, NonFiniteGuard
from genae_lightning.callbacks.reliability import INTERRUPTED_EXIT_CODE
from genae_lightning.checkpoint import read_checkpoint
from genae_lightning.checkpoint_io import SAFE_CHECKPOINT_IO
from genae_lightning.config_files import expand_config_args, fill_logger_dirs, list_configs
from genae_lightning.data import ImageDataModule
from genae_lightning.evaluate import evaluate
from genae_lightning.features import train_features
from genae_lightning.loggers import add_run_arguments, describe_runs
from genae_lightning.methods import GenerativeAutoencoder
from genae_lightning.metrics.traversal import traverse
from genae_lightning.report import report
from genae_lightning.resume import check_data, check_method, find_last_checkpoint


class GenaeCLI(LightningCLI):
    """LightningCLI whose model is any method and whose data is any image DataModule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's image shape into the model, so it is typed once."""
        # as a list: the type a YAML config gives, so model and data hparams agree in the loggers
        parser.link_arguments(
            "data.image_shape",
            "model.init_args.image_shape",
            compute_fn=list,
            apply_on="instantiate",
        )
        add_run_arguments(parser)  # --fid_feature

    def _parse_ckpt_path(self) -> None:
        """Keep the model the config describes when a checkpoint is given.

        LightningCLI would replace the config's model settings by the checkpoint's, silently
        dropping overrides and even swapping the method; ``check_resume`` compares them instead
        and refuses any difference.
        """

    def check_resume(self, subcommand: str) -> None:
        """Resolve ``--ckpt_path last`` and refuse a checkpoint this run cannot continue.

        The method (class and hyperparameters) must be the checkpoint's for every subcommand;
        ``fit`` also keeps the data settings that decide the split and the batches' order.
        """
        ckpt_path = self.config_init[subcommand].get("ckpt_path")
        if not ckpt_path or ckpt_path in ("best", "hpc"):
            return
        if ckpt_path == "last":
            ckpt_path = find_last_checkpoint(self.trainer)
            rank_zero_info(f"--ckpt_path last: resuming from {ckpt_path}")
            self.config_init[subcommand]["ckpt_path"] = str(ckpt_path)
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        checkpoint = read_checkpoint(path)
        check_method(path, checkpoint, self.model)
        if subcommand == "fit" and self.datamodule is not None:
            check_data(path, checkpoint, self.datamodule)

    def before_instantiate_classes(self) -> None:
        """Loggers without ``save_dir`` write under ``trainer.default_root_dir``."""
        fill_logger_dirs(self.config.get(str(self.subcommand), self.config))

    def before_fit(self) -> None:
        """Check the resume, then group and tag W&B runs by dataset and method."""
        self.check_resume(self.subcommand)
        describe_runs(self.trainer, self.model, self.datamodule, self.config[self.subcommand])

    before_validate = before_test = before_fit


# Most images `genae sample` puts in one grid: 10,000 is a 100 x 100 grid (2,900 px square for
# 28 x 28 digits, 6,500 px for 64 x 64 images), already beyond what a viewer shows; more only
# costs memory (the decoded images are held for the grid) and time.
MAX_SAMPLES = 10_000
# Samples decoded at a time, so memory follows the grid, not the decoder's activations.
SAMPLE_BATCH = 1_000


def _grid_path(out: str, parser: argparse.ArgumentParser) -> Path:
    """``--out`` as a file: a folder (trailing slash or existing) gets ``samples.png``."""
    from PIL import Image

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
    from PIL import Image

    from genae_lightning.checkpoint import load_method

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
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= MAX_SAMPLES:
        parser.error(f"--n must be between 1 and {MAX_SAMPLES:,} (one grid; larger grids are "
                     f"not viewable), got {args.n:,}; for more samples run several seeds")
    if args.nrow < 1:
        parser.error(f"--nrow must be >= 1 (images per row of the grid), got {args.nrow}")
    out = _grid_path(args.out, parser)
    model = load_method(args.ckpt_path, map_location=args.device)
    model.eval()
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


# Commands beside LightningCLI's fit/validate/test/predict: name -> function(argv).
COMMANDS: dict[str, Callable[[list[str]], object]] = {
    "sample": sample,
    "evaluate": evaluate,
    "report": report,
    "train-features": train_features,
    "traverse": traverse,
    "configs": list_configs,
}


def main(args: list[str] | None = None) -> None:
    """Entry point of ``genae``: ``genae fit|validate|test ...`` or ``genae sample ...``.

    ``genae fit`` exits with status ``INTERRUPTED_EXIT_CODE`` (3) when Ctrl-C or SIGTERM stopped
    it early with a resumable ``interrupted.ckpt`` (see docs/errors.md, "Interrupts").
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in COMMANDS:
        COMMANDS[argv[0]](argv[1:])
        return
    interrupt = GracefulInterrupt()
    try:
        GenaeCLI(
            GenerativeAutoencoder,
            ImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "callbacks": [interrupt, NonFiniteGuard()],
                "plugins": [SAFE_CHECKPOINT_IO],
            },
            args=expand_config_args(argv),
        )
    except SystemExit as exit_:  # Lightning ends a SIGTERM'd run with a bare SystemExit
        if interrupt.saved is None or exit_.code not in (None, 0):
            raise
    if interrupt.saved is not None:
        print(f"genae: interrupted; resumable from {interrupt.saved}; exiting with status "
              f"{INTERRUPTED_EXIT_CODE}", file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
