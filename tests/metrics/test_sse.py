import pytest
import torch

from genae_lightning.functional import sum_squared_error
from genae_lightning.metrics import ReconstructionSSE


def test_sse_metric_is_the_mean_of_the_functional_over_batches() -> None:
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(10, 1, 4, 4, generator=g), torch.rand(10, 1, 4, 4, generator=g)
    metric = ReconstructionSSE()
    for a, b in zip(x.split(3), x_hat.split(3), strict=True):  # uneven batches: 3, 3, 3, 1
        metric.update(a, b)
    expected = sum_squared_error(x.double(), x_hat.double()).mean()
    assert float(metric.compute()) == pytest.approx(float(expected), rel=1e-6)
    assert int(metric.count) == 10


def test_sse_metric_without_images_says_what_to_do() -> None:
    # torchmetrics warns first (compute before update), then genae says what to do
    with pytest.warns(UserWarning, match="called before the ``update``"), \
            pytest.raises(RuntimeError, match="no images were passed to update"):
        ReconstructionSSE().compute()
