"""Image grids of reconstructions and samples, saved as PNG and sent to the logger."""

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from genae_lightning.callbacks.metrics import GenerativeMetrics, epoch_due
from genae_lightning.functional.precision import to_module
from genae_lightning.latents import sample_batches
from genae_lightning.priors import Prior


def to_pixels(grid: Tensor) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as 8-bit pixels (H, W, C), rounded as ``save_image`` does.

    The same pixels go to the PNG file and to every logger, so they show the same image.
    """
    scaled = grid.detach().float().mul(255).add_(0.5).clamp_(0, 255)
    return scaled.permute(1, 2, 0).to("cpu", torch.uint8).numpy()


def to_image(grid: Tensor) -> Image.Image:
    """An image (C, H, W) in [0, 1] (C = 1 or 3) as a PIL image of :func:`to_pixels`."""
    pixels = to_pixels(grid)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def save_png(grid: Tensor, path: Path) -> Image.Image:
    """Write an image (C, H, W) in [0, 1] as PNG (``save_image``'s pixels); return the image."""
    image = to_image(grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return image


def log_grid(trainer: L.Trainer, key: str, grid: Tensor | Image.Image) -> None:
    """Send an image to the trainer's loggers that take images (W&B, TensorBoard).

    ``grid``: (C, H, W) in [0, 1], or the PIL image already written to a PNG. Loggers get 8-bit
    pixels (:func:`to_pixels`): W&B would cast a float tensor in [0, 1] straight to 0/1 bytes
    (a black image), and TensorBoard would truncate instead of round.
    """
    image = grid if isinstance(grid, Image.Image) else to_image(grid)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # W&B
            logger.log_image(key=key, images=[image], step=trainer.global_step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            pixels = np.asarray(image)
            logger.experiment.add_image(key, pixels, trainer.global_step,
                                        dataformats="HWC" if pixels.ndim == 3 else "HW")


def output_folder(trainer: L.Trainer, save_dir: str | None) -> Path:
    """``save_dir``, else the run's log dir (else the trainer's root dir); not created here.

    ``trainer.log_dir`` is a collective under DDP (rank 0 broadcasts it): every process must
    call this, the same number of times, before any rank-zero-only work.
    """
    return Path(save_dir or trainer.log_dir or trainer.default_root_dir)


def temporary_priors(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Prior]:
    """Temporary post-hoc priors of :class:`GenerativeMetrics` that the module lacks, by name.

    Mid-training the module has no fitted "gaussian"/"gmm" prior; GenerativeMetrics fits
    temporary ones at each run, so grids can show those samplers too.
    """
    priors: dict[str, Prior] = {}
    for callback in trainer.callbacks:
        if isinstance(callback, GenerativeMetrics):
            priors.update(callback.latest_priors)
    return {name: p for name, p in priors.items() if name not in pl_module.posthoc_priors}


class ImageLogger(L.Callback):
    """Every n epochs and at the end of training, write reconstruction and sample grids.

    Files: ``recon.png`` (evaluation images in the top half, their reconstructions below) and
    ``samples_<prior>.png`` for every available sampler ("standard", "gaussian", "gmm"), under
    ``save_dir`` (default: the trainer's log dir, the run's own ``version_<N>`` folder, so runs
    never overwrite each other's grids); periodic grids go to
    ``images/<name>_epoch=<k>.png`` there. The same grids go to every logger that takes images
    (W&B, TensorBoard) as ``images/recon`` and ``images/samples_<prior>``.

    Args:
        n: Number of images per grid.
        nrow: Images per row.
        save_dir: Folder for the PNG files; the run's log dir when None (a fixed folder is
            shared by every run that uses it: a later run overwrites the grids).
        seed: Seed for the samples, so grids of different runs are comparable.
        every_n_epochs: Also write grids after every n-th training epoch (None: only at the end).
        split: DataModule split whose images are reconstructed: "test" or "val".
    """

    def __init__(
        self,
        n: int = 64,
        nrow: int = 8,
        save_dir: str | None = None,
        seed: int = 0,
        every_n_epochs: int | None = None,
        split: Literal["test", "val"] = "test",
    ) -> None:
        self.n, self.nrow, self.save_dir, self.seed = n, nrow, save_dir, seed
        self.every_n_epochs, self.split = every_n_epochs, split

    @torch.no_grad()
    def grids(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Tensor]:
        """The grids by name: ``recon`` and ``samples_<prior>``, each (C, H', W') in [0, 1]."""
        was_training = pl_module.training
        pl_module.eval()
        try:
            images: dict[str, Tensor] = {}
            originals = getattr(trainer.datamodule, f"{self.split}_dataset", None)
            if originals is not None:
                count = min(self.n // 2, len(originals))
                x = to_module(torch.stack([originals[i][0] for i in range(count)]), pl_module)
                images["recon"] = torch.cat([x, pl_module.reconstruct(x)])
            extra = temporary_priors(trainer, pl_module)
            for name in ["standard", *pl_module.posthoc_priors.keys(), *extra]:
                generator = torch.Generator().manual_seed(self.seed)
                sampler = "prior" if name == "standard" else name
                batches = sample_batches(pl_module, sampler, self.n, self.n, generator, extra)
                images[f"samples_{name}"] = next(batches)
            return {key: make_grid(batch.float().clamp(0, 1).cpu(), nrow=self.nrow, padding=1)
                    for key, batch in images.items()}
        finally:
            pl_module.train(was_training)

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, suffix: str = "") -> Path:
        """Save the grids as PNG (``<name><suffix>.png``) and log them; return their folder.

        Every process must call it (the folder is a collective under DDP); rank zero alone
        draws, writes and logs the grids.
        """
        out = output_folder(trainer, self.save_dir)  # on every rank, before rank-zero work
        if not trainer.is_global_zero:
            return out
        for key, grid in self.grids(trainer, pl_module).items():
            path = out / (f"images/{key}{suffix}.png" if suffix else f"{key}.png")
            log_grid(trainer, f"images/{key}", save_png(grid, path))
        return out

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Periodic grids every ``every_n_epochs`` epochs."""
        if epoch_due(trainer, self.every_n_epochs):
            self.write(trainer, pl_module, suffix=f"_epoch={trainer.current_epoch}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Final grids, with every sampler fitted by then."""
        out = self.write(trainer, pl_module)
        rank_zero_info(f"ImageLogger: grids written to {out}")
