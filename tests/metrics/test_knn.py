import doctest

import pytest
import torch

from genae_lightning.metrics import knn, knn_accuracy


def test_doctests() -> None:
    assert doctest.testmod(knn).failed == 0


def test_separable_latents_give_accuracy_one() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 4, generator=g) * 10

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 3
        return centres[labels] + 0.1 * torch.randn(n, 4, generator=g), labels

    assert knn_accuracy(*draw(60), *draw(30), k=5) == 1.0


def test_random_labels_give_chance_level() -> None:
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(400, 2, generator=g), torch.randint(2, (400,), generator=g)
    assert 0.3 < knn_accuracy(z[:300], y[:300], z[300:], y[300:]) < 0.7


def test_bad_inputs() -> None:
    z, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="k=5"):
        knn_accuracy(z, y, z, y, k=5)
    with pytest.raises(ValueError, match="same model"):
        knn_accuracy(z, y, torch.zeros(4, 3), y, k=1)
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        knn_accuracy(z, y[:3], z, y, k=1)


def test_knn_metric_accumulates_batches_like_the_function() -> None:
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(120, 3, generator=g), torch.randint(0, 3, (120,), generator=g)
    metric = knn.KNNAccuracy(k=5)
    for codes, labels in zip(z[:80].split(16), y[:80].split(16), strict=True):
        metric.update(codes, labels, train=True)
    metric.update(z[80:], y[80:], train=False)
    assert float(metric.compute()) == knn_accuracy(z[:80], y[:80], z[80:], y[80:], k=5)
    metric.reset()
    with pytest.warns(UserWarning, match="called before the ``update``"), \
            pytest.raises(ValueError, match="expected train codes of shape"):
        metric.compute()  # nothing accumulated: the function's shape check says so
