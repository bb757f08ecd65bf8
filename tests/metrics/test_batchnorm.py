"""recalibrate_batchnorm: running statistics become the batches' average; errors are clear."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.methods import AE, InjFlow
from genae_lightning.metrics import recalibrate_batchnorm
from genae_lightning.metrics.batchnorm import batchnorm_layers, recalibration_loader


def model_with_batchnorm() -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=(1, 8, 8), latent_dim=3,
                   backbone=MLPBackbone(hidden=[16], batch_norm=True))


def test_running_statistics_become_the_average_over_the_batches() -> None:
    model = model_with_batchnorm().eval()
    batches = [torch.rand(16, 1, 8, 8) for _ in range(3)]
    momenta = [m.momentum for m in batchnorm_layers(model)]
    assert recalibrate_batchnorm(model, iter(batches), num_batches=5) == 3  # ran out after 3
    assert not model.training  # mode restored
    assert [m.momentum for m in batchnorm_layers(model)] == momenta
    # the encoder's first BatchNorm sees the first linear layer's outputs: check it exactly
    first = batchnorm_layers(model.encoder)[0]
    linear = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        means = torch.stack([linear(b.flatten(1)).mean(0) for b in batches])
    torch.testing.assert_close(first.running_mean, means.mean(0))
    assert int(first.num_batches_tracked) == 3


def test_eval_mode_then_matches_train_mode_on_the_same_batch() -> None:
    model = model_with_batchnorm()
    x = torch.rand(64, 1, 8, 8)
    with torch.no_grad():
        model.train()
        train_out = model.reconstruct(x)
        model.eval()
        stale = model.reconstruct(x)
    recalibrate_batchnorm(model, [x], num_batches=1)
    with torch.no_grad():
        fresh = model.reconstruct(x)
    # the running variance is the unbiased batch variance, BatchNorm's batch one the biased one
    assert (fresh - train_out).abs().max() < 0.1 * (stale - train_out).abs().max()


def test_bad_calls_are_clear_errors() -> None:
    ae = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        recalibrate_batchnorm(ae, [torch.rand(4, 1, 8, 8)], num_batches=1)
    model = model_with_batchnorm()
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        recalibrate_batchnorm(model, [torch.rand(4, 1, 8, 8)], num_batches=0)
    with pytest.raises(ValueError, match="got no batch"):
        recalibrate_batchnorm(model, [], num_batches=2)


def test_loader_is_seeded() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(40.0))
    first = [b[0] for b in recalibration_loader(data, 8, seed=3)]
    again = [b[0] for b in recalibration_loader(data, 8, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
