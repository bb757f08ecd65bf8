"""Image grids of reconstructions and samples, saved as PNG and sent to the logger."""

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image


def log_grid(trainer: L.Trainer, key: str, grid: Tensor) -> None:
    """Send an image grid (C, H, W) to the trainer's loggers that take images."""
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # W&B
            logger.log_image(key=key, images=[grid], step=trainer.global_step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            logger.experiment.add_image(key, grid, trainer.global_step)


class ImageLogger(L.Callback):
    """At the end of training, write reconstruction and sample grids.

    Files: ``recon.png`` (originals in the top half, reconstructions below) and
    ``samples_<prior>.png`` for every available prior, under ``save_dir`` (default: the trainer's
    log dir). The same grids go to the logger as ``images/recon`` and ``images/samples_<prior>``.

    Args:
        n: Number of images per grid.
        nrow: Images per row.
        save_dir: Folder for the PNG files; the run's log dir when None.
        seed: Seed for the samples, so grids of different runs are comparable.
    """

    def __init__(self, n: int = 64, nrow: int = 8, save_dir: str | None = None, seed: int = 0) -> None:
        self.n, self.nrow, self.save_dir, self.seed = n, nrow, save_dir, seed

    def _dir(self, trainer: L.Trainer) -> Path:
        path = Path(self.save_dir or trainer.log_dir or trainer.default_root_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @torch.no_grad()
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the grids (rank zero only)."""
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            out = self._dir(trainer)
            grids = {}
            loader = trainer.datamodule.val_dataloader() if trainer.datamodule else None
            if loader is not None:
                x = next(iter(loader))[0][: self.n // 2].to(pl_module.device)
                grids["recon"] = torch.cat([x, pl_module.reconstruct(x)])
            for name in ["standard", *pl_module.posthoc_priors.keys()]:
                gen = torch.Generator(device="cpu").manual_seed(self.seed)
                grids[f"samples_{name}"] = pl_module.sample(self.n, prior=name, generator=gen)
            for key, images in grids.items():
                grid = make_grid(images.float().clamp(0, 1).cpu(), nrow=self.nrow, padding=1)
                save_image(grid, out / f"{key}.png")
                log_grid(trainer, f"images/{key}", grid)
        finally:
            pl_module.train(was_training)
