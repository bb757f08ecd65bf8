"""``genae fit|validate|test|predict``: LightningCLI over any method and image DataModule.

:class:`GenaeCLI` links the data's image shape into the model, resolves ``--ckpt_path last`` and
refuses a checkpoint the run cannot continue (:mod:`~genae_lightning.commands.resume`);
:func:`fit` runs it with the interrupt and non-finite guards and the safe checkpoint IO, the
config arguments composed first (:mod:`~genae_lightning.commands.config_files`).
"""

import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import genae_lightning.callbacks  # noqa: F401  (registers callbacks for short names)
import genae_lightning.data  # noqa: F401  (registers DataModules for short names)
import genae_lightning.methods  # noqa: F401  (registers methods for short names)
from genae_lightning.callbacks import GenerativeMetrics, GracefulInterrupt, NonFiniteGuard
from genae_lightning.callbacks.reliability import INTERRUPTED_EXIT_CODE
from genae_lightning.checkpoints.io import SAFE_CHECKPOINT_IO
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.commands.checkpoints import checkpoint_file
from genae_lightning.commands.config_files import expand_config_args, fill_logger_dirs
from genae_lightning.commands.console import say
from genae_lightning.commands.resume import check_data, check_method, find_last_checkpoint
from genae_lightning.commands.run_folders import (
    checkpoint_run_folder,
    run_description,
    write_into_run_folder,
)
from genae_lightning.commands.summary import fit_summary, relative, run_folder
from genae_lightning.data import ImageDataModule
from genae_lightning.features.extractors import check_feature_argument
from genae_lightning.loggers import describe_runs
from genae_lightning.methods import GenerativeAutoencoder

# LightningCLI's own subcommands, which :func:`fit` runs.
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class GenaeCLI(LightningCLI):
    """LightningCLI whose model is any method and whose data is any image DataModule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's image shape into the model, so it is typed once; add --fid_feature."""
        # as a list: the type a YAML config gives, so model and data hparams agree in the loggers
        parser.link_arguments(
            "data.image_shape",
            "model.init_args.image_shape",
            compute_fn=list,
            apply_on="instantiate",
        )
        parser.add_argument(
            "--fid_feature", type=str | None, default=None,
            help="FID features of every GenerativeMetrics callback: 'inception', or the path of "
                 "a `genae train-features` classifier (classifier FID, for machines without the "
                 "Inception weights). Default: each callback's own `fid_feature` setting.",
        )

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
        if ckpt_path is None or ckpt_path in ("best", "hpc"):
            return
        if ckpt_path == "last":
            ckpt_path = find_last_checkpoint(self.trainer)
            if self.trainer.is_global_zero:
                say(f"--ckpt_path last: resuming from {ckpt_path}")
            self.config_init[subcommand]["ckpt_path"] = str(ckpt_path)
        path = checkpoint_file(ckpt_path)
        checkpoint = read_checkpoint(path)
        check_method(path, checkpoint, self.model)
        if subcommand == "fit" and self.datamodule is not None:
            check_data(path, checkpoint, self.datamodule)

    def before_instantiate_classes(self) -> None:
        """Loggers without ``save_dir`` write under ``trainer.default_root_dir``."""
        fill_logger_dirs(self.config.get(str(self.subcommand), self.config))

    def before_fit(self) -> None:
        """Check the resume, then name, group and tag the W&B runs (job type: the subcommand)."""
        self.check_resume(self.subcommand)
        config = self.config[self.subcommand]
        describe_runs(self.trainer, self.model, self.datamodule, config,
                      **run_description(self.subcommand,
                                        self.config_init[self.subcommand].get("ckpt_path")),
                      fid_feature=apply_fid_feature(self.trainer, config.get("fid_feature")))
        if self.subcommand == "fit":
            self.announce_run()

    before_validate = before_test = before_fit

    def announce_run(self) -> None:
        """Say where the run writes before it starts (every rank asks: the folder is broadcast)."""
        self.started = time.monotonic()
        folder = run_folder(self.trainer)
        if self.trainer.is_global_zero:
            say(f"genae fit: run folder {relative(folder)}")

    def after_fit(self) -> None:
        """Say what the run wrote and its final metrics."""
        folder = run_folder(self.trainer)  # on every rank: a collective under DDP
        if self.trainer.is_global_zero:
            say(fit_summary(self.trainer, folder, time.monotonic() - self.started))

    def before_predict(self) -> None:
        """Refuse to predict without a checkpoint, or with one of another method or settings.

        Then predict into the checkpoint's run folder (no new ``version_<n>/``), and name the
        W&B run (job type ``predict``) and group it as the training run.
        """
        ckpt_path = self.config_init["predict"].get("ckpt_path")
        if not ckpt_path:
            raise ValueError(
                "genae predict needs the trained weights, and no --ckpt_path was given (it would "
                "predict with an untrained model): pass the checkpoint of a `genae fit` run, "
                "e.g. --ckpt_path <log dir>/checkpoints/last.ckpt"
            )
        self.check_resume(self.subcommand)
        write_into_run_folder(self.trainer)
        config = self.config["predict"]
        describe_runs(self.trainer, self.model, self.datamodule, config,
                      **run_description("predict", self.config_init["predict"]["ckpt_path"]),
                      fid_feature=apply_fid_feature(self.trainer, config.get("fid_feature")))

    def after_predict(self) -> None:
        """Write the codes and reconstructions to ``predictions.pt`` in the checkpoint's run."""
        ckpt_path = self.config_init["predict"]["ckpt_path"]
        path = save_predictions(self.trainer, checkpoint_run_folder(ckpt_path))
        rank_zero_info(f"wrote the codes and reconstructions of the test split to {path} "
                       "(torch.load(path, weights_only=True): a dict of tensors)")


def apply_fid_feature(trainer: L.Trainer, fid_feature: str | None = None) -> str | None:
    """Set (when given) and name the FID features of ``trainer``'s ``GenerativeMetrics``.

    ``genae fit --fid_feature`` goes here, and the name returned goes to the loggers.

    Returns:
        The features' name (``"inception"``, a classifier file, a module's class name), or
        None when the trainer has no ``GenerativeMetrics`` callback.

    Raises:
        FileNotFoundError: ``fid_feature`` is neither ``inception`` nor an existing file.
        ValueError: ``fid_feature`` is given but no callback computes FID.
    """
    metrics = [c for c in trainer.callbacks if isinstance(c, GenerativeMetrics)]
    if fid_feature is not None:
        if not metrics:
            raise ValueError(
                f"--fid_feature {fid_feature!r} sets the FID features of the GenerativeMetrics "
                "callback, but this trainer has none; expected a config whose trainer part "
                "lists genae_lightning.callbacks.GenerativeMetrics (every paper config does), "
                "or drop --fid_feature"
            )
        check_feature_argument(fid_feature, "--fid_feature")
        for callback in metrics:
            callback.fid_feature = fid_feature
    names = {c.fid_feature if isinstance(c.fid_feature, str) else type(c.fid_feature).__name__
             for c in metrics}
    return ",".join(sorted(names)) or None


def save_predictions(trainer: L.Trainer, folder: str | Path | None = None) -> Path:
    """Concatenate ``trainer.predict``'s per-batch dicts and save them in ``folder``.

    ``folder``: the checkpoint's run folder under ``genae predict``; None: the trainer's log
    dir. One file per process under DDP (``predictions-rank<r>.pt``), each holding its shard.
    """
    batches = trainer.predict_loop.predictions
    if batches and isinstance(batches[0], list):  # several predict dataloaders: the first
        batches = batches[0]
    merged = {key: torch.cat([b[key].detach().cpu() for b in batches]) for key in batches[0]}
    rank = trainer.global_rank
    name = "predictions.pt" if trainer.world_size == 1 else f"predictions-rank{rank}.pt"
    path = Path(folder or trainer.log_dir or trainer.default_root_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(merged, path)
    return path


def fit(argv: list[str]) -> None:
    """Run LightningCLI on ``argv`` (``fit|validate|test|predict ...``).

    ``genae fit`` exits with status ``INTERRUPTED_EXIT_CODE`` (3) when Ctrl-C or SIGTERM stopped
    it early with a resumable ``interrupted.ckpt`` (see docs/errors.md, "Interrupts").
    """
    interrupt = GracefulInterrupt()
    # genae passes the composed arguments on purpose: Lightning's notice about it is misleading
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
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
