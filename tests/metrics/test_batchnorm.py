"""recalibrate_batchnorm: running statistics become the batches' average; errors are clear."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.latents import recalibrate_batchnorm
from genae_lightning.latents.batchnorm import (
    batchnorm_layers,
    describe,
    fixed_batches,
    mode_errors,
    recalibration_loader,
    settle_batchnorm,
    settle_for_evaluation,
)
from genae_lightning.methods import AE, InjFlow


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


def first_batchnorm_inputs(model: InjFlow, batches: list[torch.Tensor]) -> torch.Tensor:
    """What the encoder's first BatchNorm sees: the first linear layer's outputs, all batches."""
    linear = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        return torch.cat([linear(b.flatten(1)) for b in batches]).double()


def test_recalibration_gives_the_exact_mean_and_unbiased_variance_of_all_batches() -> None:
    model = model_with_batchnorm()
    # unequal sizes and shifted distributions: averaging per-batch statistics would be wrong
    batches = [torch.rand(16, 1, 8, 8), 3 * torch.rand(5, 1, 8, 8), torch.rand(9, 1, 8, 8) - 1]
    recalibrate_batchnorm(model, batches, num_batches=3)
    features = first_batchnorm_inputs(model, batches)
    first = batchnorm_layers(model.encoder)[0]
    torch.testing.assert_close(first.running_mean.double(), features.mean(0), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(first.running_var.double(), features.var(0, unbiased=True),
                               rtol=1e-5, atol=1e-6)



def test_update_bn_averages_per_batch_statistics_instead() -> None:
    """What ``torch.optim.swa_utils.update_bn`` gives on the same batches (why it is not used):
    the unweighted mean of per-batch means and of per-batch unbiased variances."""
    batches = [torch.rand(16, 1, 8, 8), 3 * torch.rand(5, 1, 8, 8), torch.rand(9, 1, 8, 8) - 1]
    ours, theirs = model_with_batchnorm(), model_with_batchnorm()
    recalibrate_batchnorm(ours, batches, num_batches=3)
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(batches, theirs)
    per_batch = [first_batchnorm_inputs(ours, [b]) for b in batches]
    first = batchnorm_layers(theirs.encoder)[0]
    averaged_var = torch.stack([f.var(0, unbiased=True) for f in per_batch]).mean(0)
    torch.testing.assert_close(first.running_mean.double(),
                               torch.stack([f.mean(0) for f in per_batch]).mean(0),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.running_var.double(), averaged_var, rtol=1e-5, atol=1e-6)
    pooled_var = first_batchnorm_inputs(ours, batches).var(0, unbiased=True)
    assert (pooled_var - averaged_var).abs().max() > 0.1 * pooled_var.abs().max()
    torch.testing.assert_close(batchnorm_layers(ours.encoder)[0].running_var.double(),
                               pooled_var, rtol=1e-5, atol=1e-6)


def test_a_layer_no_batch_reaches_keeps_its_statistics() -> None:
    model = model_with_batchnorm()
    model.unused = torch.nn.BatchNorm1d(4)  # off the reconstruction path, e.g. a critic's
    model.unused.running_mean.fill_(0.5)
    model.unused.running_var.fill_(2.0)
    model.unused.num_batches_tracked.fill_(7)
    recalibrate_batchnorm(model, [torch.rand(8, 1, 8, 8)], num_batches=1)
    assert model.unused.running_mean.tolist() == [0.5] * 4
    assert model.unused.running_var.tolist() == [2.0] * 4
    assert int(model.unused.num_batches_tracked) == 7
    assert all(int(m.num_batches_tracked) == 1 for m in batchnorm_layers(model.encoder))

def make_stale(model: InjFlow) -> None:
    for m in batchnorm_layers(model):
        m.running_mean.add_(2.0 * m.running_var.sqrt())  # two deviations off
        m.running_var.mul_(0.01)


def test_mode_errors_leave_statistics_and_modes_alone() -> None:
    model = model_with_batchnorm().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_error, eval_error = mode_errors(model, [torch.rand(32, 1, 8, 8)])
    assert train_error > 0 and eval_error > 0 and train_error != eval_error
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.training and all(m.training for m in model.modules())
    assert all(m.track_running_stats for m in batchnorm_layers(model))


def test_auto_detects_stale_statistics_and_recalibrates_them_exactly() -> None:
    model = model_with_batchnorm()
    train = [torch.rand(16, 1, 8, 8) for _ in range(4)]
    recalibrate_batchnorm(model, train, num_batches=4)  # fresh statistics
    first = batchnorm_layers(model.encoder)[0]
    exact = first.running_mean.clone(), first.running_var.clone()
    make_stale(model)
    check = [torch.rand(32, 1, 8, 8)]
    record = settle_batchnorm(model, check, train, "auto", tolerance=0.2, num_batches=4)
    assert record is not None and record["recalibrated"] and record["batches"] == 4
    assert record["relative_difference"] > 0.2
    assert record["eval_error"] > record["train_error"]
    torch.testing.assert_close((first.running_mean, first.running_var), exact)
    assert abs(record["eval_error_after"] - record["train_error"]) < 0.05 * record["train_error"]
    assert "recomputed the running statistics over 4 training batches" in describe(record)


def test_auto_leaves_fresh_statistics_alone() -> None:
    model = model_with_batchnorm()
    train = [torch.rand(64, 1, 8, 8) for _ in range(4)]
    recalibrate_batchnorm(model, train, num_batches=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    record = settle_batchnorm(model, [torch.rand(64, 1, 8, 8)], train, "auto", 0.2, 4)
    assert record is not None and not record["recalibrated"] and record["batches"] == 0
    assert record["relative_difference"] < 0.2
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert "kept the running statistics" in describe(record)


def test_always_and_never_override_the_check() -> None:
    train = [torch.rand(16, 1, 8, 8) for _ in range(2)]
    fresh = model_with_batchnorm()
    recalibrate_batchnorm(fresh, train, num_batches=2)
    always = settle_batchnorm(fresh, train[:1], train, "always", 0.5, 2)
    assert always is not None and always["recalibrated"] and always["batches"] == 2
    stale = model_with_batchnorm()
    recalibrate_batchnorm(stale, train, num_batches=2)
    make_stale(stale)
    before = {k: v.clone() for k, v in stale.state_dict().items()}
    never = settle_batchnorm(stale, train[:1], train, "never", 0.5, 2)
    assert never is not None and not never["recalibrated"]
    assert never["relative_difference"] > 0.2  # still measured and reported
    assert all(torch.equal(v, stale.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="'auto', 'always' or 'never'"):
        settle_batchnorm(stale, train[:1], train, "sometimes", 0.5, 2)  # type: ignore[arg-type]


def test_models_without_batchnorm_are_not_checked() -> None:
    ae = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    assert settle_batchnorm(ae, [torch.rand(4, 1, 8, 8)], [], "always") is None
    assert settle_for_evaluation(ae, [], None, 4) is None


def test_bad_batchnorm_settings_are_clear_errors() -> None:
    from types import SimpleNamespace

    from genae_lightning.callbacks import FitLatentPrior

    with pytest.raises(ValueError, match="must be 'auto', 'always' or 'never', got 'sometimes'"):
        FitLatentPrior(batchnorm="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batchnorm_batches >= 1 and batchnorm_check_samples"):
        FitLatentPrior(batchnorm_batches=0)
    with pytest.raises(ValueError, match="tolerance must be >= 0, got -1"):
        settle_batchnorm(model_with_batchnorm(), [torch.rand(4, 1, 8, 8)], [], "auto", -1.0)
    no_data = SimpleNamespace(datamodule=None, train_dataloader=None)
    with pytest.raises(RuntimeError, match="BatchNorm check needs the training set"):
        FitLatentPrior().settle_batchnorm(no_data, model_with_batchnorm())  # type: ignore[arg-type]


def test_fixed_batches_are_whole_batches_of_the_first_images() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10.0).view(10, 1), torch.zeros(10))
    assert [b.flatten().tolist() for b in fixed_batches(data, 7, 3)] == [[0, 1, 2], [3, 4, 5]]
    assert [len(b) for b in fixed_batches(data, 2, 4)] == [4]  # one batch, never size 1
    assert [len(b) for b in fixed_batches(data, 100, 4)] == [4, 4]  # the dataset ran out
    assert [len(b) for b in fixed_batches(data, 100, 16)] == [10]
