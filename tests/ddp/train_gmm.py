"""DDP on 2 CPU processes (gloo), run as a script by tests/ddp/test_ddp.py (not collected).

Lightning's ``ddp`` strategy starts rank 1 by running this script again, so it cannot run inside
pytest. Two fits, both on 2 processes:

* ``full``: a VAE trained 7 steps (5 batches an epoch per process, so the run crosses an epoch)
  through the DataLoader path, checkpointed every 3 steps, then ``FitLatentPrior``.
* ``resumed``: the same run resumed from its step-3 checkpoint on the ``in_memory`` data path.

Each process writes ``<out>/<run>_rank<r>.pt``: its per-step training losses, its number of
training batches and the post-hoc priors it holds at the end.

    python tests/ddp/train_gmm.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import VAE

SHAPE = (1, 8, 8)
STOP, TOTAL = 3, 7
DATA = dict(image_shape=SHAPE, num_samples=100, batch_size=8)  # 90 train: 45 per process
N_COMPONENTS = 3


class RecordLoss(L.Callback):
    """Each process's own training loss at every step (not synced across processes)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(trainer.callback_metrics["train/loss"])


def build() -> VAE:
    torch.manual_seed(0)
    return VAE(image_shape=SHAPE, latent_dim=4, backbone=MLPBackbone(hidden=[32]))


def run(out: Path, name: str, in_memory: bool, ckpt_path: Path | None = None) -> None:
    L.seed_everything(0)
    model, record = build(), RecordLoss()
    checkpoints = ModelCheckpoint(dirpath=out / name, every_n_train_steps=STOP, save_top_k=-1,
                                  filename="{step}", save_last=True)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=TOTAL, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=1, deterministic=True, default_root_dir=out,
        callbacks=[record, checkpoints, FitLatentPrior(n_components=N_COMPONENTS)],
    )
    data = SyntheticImages(**DATA, in_memory=in_memory)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    torch.save(
        {
            "losses": record.losses,
            "batches": trainer.num_training_batches,
            "world_size": trainer.world_size,
            "priors": {k: p.state_dict() for k, p in model.posthoc_priors.items()},
        },
        out / f"{name}_rank{trainer.global_rank}.pt",
    )


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    run(out, "full", in_memory=False)
    run(out, "resumed", in_memory=True, ckpt_path=out / "full" / f"step={STOP}.ckpt")


if __name__ == "__main__":
    main()
