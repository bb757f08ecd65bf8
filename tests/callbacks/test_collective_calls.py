"""Under DDP, the callbacks make their collective calls on every process, the same number of times.

A collective (``trainer.log_dir``, which broadcasts; ``strategy.broadcast``; barriers; gathers)
made on some processes only waits forever. These tests play one process's part with a stand-in
trainer that counts its collectives; ``tests/ddp/test_ddp_paper_config.py`` runs the real thing.
"""

from pathlib import Path

import pytest
import torch
from torch import nn

from genae_lightning.autoencoder.nonfinite import NonFiniteLossError
from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import ImageLogger, NonFiniteGuard
from genae_lightning.callbacks.reliability import remove_empty_log_dir
from genae_lightning.data import SyntheticImages
from genae_lightning.distributed import Collective
from genae_lightning.methods import AE
from tests.conftest import tiny_trainer


class OneProcess:
    """The part of a Trainer that ImageLogger reads, as process ``rank`` sees it."""

    def __init__(self, rank: int, root: Path) -> None:
        self.global_rank, self.is_global_zero = rank, rank == 0
        self.default_root_dir, self.loggers, self.global_step = str(root), [], 0
        self.collectives = 0

    @property
    def log_dir(self) -> str:
        self.collectives += 1  # Trainer.log_dir broadcasts rank 0's folder
        return self.default_root_dir


@pytest.mark.parametrize("save_dir", [None, "grids"])
def test_image_logger_makes_the_same_collectives_on_every_rank(tmp_path, save_dir, monkeypatch):
    monkeypatch.setattr(ImageLogger, "grids", lambda self, trainer, module: {})  # rank 0's work
    callback = ImageLogger(save_dir=save_dir and str(tmp_path / save_dir))
    ranks = [OneProcess(rank, tmp_path) for rank in range(2)]
    for trainer in ranks:
        callback.on_train_end(trainer, None)  # type: ignore[arg-type]
    assert ranks[0].collectives == ranks[1].collectives == (0 if save_dir else 1)


def test_removing_an_empty_log_folder_makes_no_collective(tmp_path) -> None:
    """``on_exception`` runs on the failing processes only: a broadcast there never returns."""
    trainer = tiny_trainer(tmp_path, logger=True)
    folder = Path(trainer.logger.log_dir)
    folder.mkdir(parents=True)

    def collective(*args, **kwargs):
        raise AssertionError("a collective call in on_exception")

    trainer.strategy.broadcast = collective
    assert remove_empty_log_dir(trainer) == folder and not folder.exists()


def test_a_bad_batch_on_another_process_skips_or_stops_this_one_too(tmp_path) -> None:
    """The guard decides with the other processes (else one steps while another waits)."""

    def fit(guard: NonFiniteGuard | None) -> AE:
        torch.manual_seed(0)
        model = AE(image_shape=(1, 4, 4), latent_dim=2, backbone=MLPBackbone(hidden=[8]))
        trainer = tiny_trainer(tmp_path, max_steps=3, callbacks=[guard] if guard else [])
        decide = trainer.strategy.reduce_boolean_decision  # this process's batches are finite:
        trainer.strategy.reduce_boolean_decision = lambda decision, all=True: decide(
            decision and trainer.global_step != 1, all)  # another one's is not at step 1
        trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 4, 4), num_samples=32,
                                                      batch_size=4))
        return model

    assert int(fit(NonFiniteGuard(skip_nonfinite=1)).nonfinite_skipped) == 1
    with pytest.raises(NonFiniteLossError, match="non-finite loss terms of another process at "
                                                 "step 1.*Saved the weights"):
        fit(NonFiniteGuard())
    with pytest.raises(NonFiniteLossError, match="non-finite loss terms of another process at "
                                                 "step 1.*No checkpoint was written"):
        fit(None)  # without the guard (the Python API), the run stops on every process too


class RankOne:
    """Rank 1 of 2, whose broadcasts return rank 0's ``values``."""

    global_rank, world_size = 1, 2

    def __init__(self, values: list[torch.Tensor]) -> None:
        self.values, self.calls = values, 0

    def broadcast(self, obj, src: int = 0):
        self.calls += 1
        return self.values


def test_every_process_gets_rank_zeros_batchnorm_statistics() -> None:
    """The last training step leaves each process its own running statistics (DDP copies rank
    0's in before a forward, not after): FitLatentPrior and GenerativeMetrics take rank 0's."""
    torch.manual_seed(0)
    here, rank_zero = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    here(torch.randn(8, 3))
    rank_zero(torch.randn(8, 3) + 1)
    strategy = RankOne([b.clone() for b in rank_zero.buffers()])
    Collective(strategy).sync_buffers(here)  # type: ignore[arg-type]
    assert strategy.calls == 1  # one broadcast for all buffers
    for mine, theirs in zip(here.buffers(), rank_zero.buffers(), strict=True):
        assert torch.equal(mine, theirs)
