"""The ``genae`` command: LightningCLI (fit/validate/test) plus ``genae sample``."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from torchvision.utils import save_image

import genae_lightning.callbacks  # noqa: F401  (registers callbacks for short names)
import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
import genae_lightning.methods  # noqa: F401  (registers methods for short names)
from genae_lightning.callbacks import GracefulInterrupt
from genae_lightning.config_files import expand_config_args, fill_logger_dirs, list_configs
from genae_lightning.data import ImageDataModule
from genae_lightning.evaluate import evaluate
from genae_lightning.features import train_features
from genae_lightning.loggers import describe_runs
from genae_lightning.methods import GenerativeAutoencoder
from genae_lightning.metrics.traversal import traverse
from genae_lightning.report import report


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

    def before_instantiate_classes(self) -> None:
        """Loggers without ``save_dir`` write under ``trainer.default_root_dir``."""
        fill_logger_dirs(self.config.get(str(self.subcommand), self.config))

    def before_fit(self) -> None:
        """Group and tag W&B runs by dataset and method before the run starts."""
        describe_runs(self.trainer, self.model, self.datamodule)

    before_validate = before_test = before_fit


def sample(argv: list[str]) -> Path:
    """``genae sample``: decode samples of a checkpoint's prior into a PNG grid."""
    from genae_lightning.checkpoint import load_method

    parser = argparse.ArgumentParser(prog="genae sample", description=sample.__doc__)
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `genae fit`")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--prior", choices=["standard", "gaussian", "gmm"], default="gmm",
                        help="the method's own prior or a post-hoc prior fitted after training")
    parser.add_argument("--out", default="samples.png", help="output PNG path")
    parser.add_argument("--nrow", type=int, default=8, help="images per row of the grid")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    model = load_method(args.ckpt_path, map_location=args.device)
    model.eval()
    try:
        images = model.sample(args.n, prior=args.prior,
                              generator=torch.Generator().manual_seed(args.seed))
    except RuntimeError as err:
        parser.exit(2, f"genae sample: error: {err}\n")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().clamp(0, 1).cpu(), out, nrow=args.nrow, padding=1)
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
    """Entry point of ``genae``: ``genae fit|validate|test ...`` or ``genae sample ...``."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in COMMANDS:
        COMMANDS[argv[0]](argv[1:])
        return
    GenaeCLI(
        GenerativeAutoencoder,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [GracefulInterrupt()]},
        args=expand_config_args(argv),
    )


if __name__ == "__main__":
    main()
