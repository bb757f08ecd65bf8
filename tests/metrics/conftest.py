"""Fixtures for the metric tests: a tiny, call-counting FID feature extractor and tiny images."""

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genae_lightning.data.synthetic import smooth_noise
from genae_lightning.features.extractors import module_id
from genae_lightning.metrics.fid import fid_prefix


class TinyFeatures(nn.Module):
    """2x2 average-pooled pixels as features (12 for RGB input); counts its calls."""

    num_features = 12

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return F.adaptive_avg_pool2d(x, 2).flatten(1)  # (B, 12)


TINY_FID = fid_prefix(module_id(TinyFeatures()))  # its FIDs' key prefix: fid_tinyfeatures-<hash>


@pytest.fixture
def tiny_features() -> TinyFeatures:
    return TinyFeatures()


def images(n: int, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0) -> Tensor:
    return smooth_noise(n, shape, torch.Generator().manual_seed(seed))


def batches(x: Tensor, size: int = 16) -> list[Tensor]:
    return list(x.split(size))
