"""BatchNorm recalibration under DDP: 2 gloo processes give what one process computes.

Each process recalibrates on its own batches and sums (sum, sum of squares, count) over the
processes; the running statistics must equal one process's exact statistics over all batches.
"""

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genae_lightning.backbones import MLPBackbone
from genae_lightning.latents import recalibrate_batchnorm
from genae_lightning.latents.batchnorm import batchnorm_layers
from genae_lightning.methods import InjFlow

WORLD = 2


def build() -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=(1, 8, 8), latent_dim=3,
                   backbone=MLPBackbone(hidden=[16, 8], batch_norm=True))


def all_batches() -> list[torch.Tensor]:
    """Five batches of unequal sizes and shifted distributions (rank r takes r, r + 2, ...)."""
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 1, 8, 8, generator=g) * (i + 1) - i
            for i, n in enumerate((16, 7, 12, 9, 4))]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=WORLD)
    try:
        model = build()
        used = recalibrate_batchnorm(model, all_batches()[rank::WORLD], num_batches=10,
                                     reduce=all_reduce_sum)
        torch.save({"used": used, "stats": [(m.running_mean, m.running_var,
                                             m.num_batches_tracked)
                                            for m in batchnorm_layers(model)]},
                   Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_recalibration_equals_one_process_over_all_batches(tmp_path) -> None:
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    single = build()
    recalibrate_batchnorm(single, all_batches(), num_batches=10)
    expected = [(m.running_mean, m.running_var, m.num_batches_tracked)
                for m in batchnorm_layers(single)]
    assert len(expected) == 4  # encoder and decoder, two hidden layers each
    for rank in range(WORLD):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert saved["used"] == (3, 2)[rank]
        for (mean, var, tracked), (ref_mean, ref_var, ref_tracked) in zip(
                saved["stats"], expected, strict=True):
            torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(var, ref_var, rtol=1e-5, atol=1e-6)
            assert int(tracked) == int(ref_tracked) == 5
