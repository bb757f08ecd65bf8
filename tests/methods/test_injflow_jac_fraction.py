"""InjFlow(jac_fraction): the Jacobian term on a random sub-batch, unbiased, resumable."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from genae_lightning.autoencoder.batch_statistics import BatchStatistics
from genae_lightning.backbones import Backbone, MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import estimate_jacobian_sq_norm
from genae_lightning.methods import InjFlow, Penalty
from tests.conftest import tiny_trainer

SHAPE = (1, 2, 3)  # D = 6
D, d = 6, 2


class Square(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z**2


class SquareBackbone(Backbone):
    """Encoder x -> A x; decoder z -> W (z * z): J_g(z) = 2 W diag(z), a different norm per row."""

    def encoder(self, image_shape, out_features):
        return nn.Sequential(nn.Flatten(),
                             nn.Linear(math.prod(image_shape), out_features, bias=False))

    def decoder(self, latent_dim, image_shape):
        return nn.Sequential(Square(), nn.Linear(latent_dim, math.prod(image_shape), bias=False),
                             nn.Unflatten(1, image_shape))


def build(**kw) -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=SHAPE, latent_dim=d, bound="linear", lam=0.5, eta=1e-4,
                   prior_weight=0.0, backbone=SquareBackbone(), **kw)


@pytest.mark.parametrize("jvp", ["forward", "finite_difference", "reverse"])
def test_subset_estimator_is_unbiased_for_the_batch_mean_frobenius_norm(jvp) -> None:
    model = build(jac_fraction=0.5, jvp=jvp, fd_eps=1e-4)
    x = torch.rand(6, *SHAPE)
    x[:3] *= 4.0  # the first rows have much larger Jacobians: a non-uniform subset would be biased
    W = model.decoder[1].weight  # (D, d)
    with torch.no_grad():
        z = model.encode(x)
        exact = (4 * z**2 * W.pow(2).sum(0)).sum(1)  # ||2 W diag(z)||_F^2 per row
    torch.manual_seed(1)
    draws = torch.stack([model.loss(x).terms["jac"].detach() for _ in range(1500)])
    # lam = 1/2 and a negligible clamp: the "jac" term is the batch mean of ||J v||^2
    assert draws.mean().item() == pytest.approx(exact.mean().item(), rel=0.05)
    assert exact[:3].mean() > 5 * exact[3:].mean()


def test_fraction_one_is_the_full_batch_estimate() -> None:
    x = torch.rand(4, *SHAPE)
    default, model = build(), build(jac_fraction=1.0)
    torch.manual_seed(1)
    expected_total = default.loss(x).total
    torch.manual_seed(1)
    one = model.loss(x)
    torch.manual_seed(1)
    v = torch.randn(4, d)  # the probe is the first draw: no subset is drawn at fraction 1
    z = model.encode(x).detach()
    W = model.decoder[1].weight.detach()
    jv = (2 * z * v) @ W.T
    torch.testing.assert_close(one.terms["jac"], jv.pow(2).sum(1).mean())
    torch.testing.assert_close(one.total, expected_total)


def test_reconstruction_stays_on_every_row() -> None:
    model = build(jac_fraction=0.25)
    x = torch.rand(8, *SHAPE)
    out = model.loss(x)
    with torch.no_grad():
        expected = (x - model.reconstruct(x)).flatten(1).pow(2).sum(1).mean()
    torch.testing.assert_close(out.terms["rec"].detach(), expected)
    assert model.jac_rows(8).numel() == 2 and model.jac_rows(7).numel() == 2  # ceil(0.25 B)
    assert sorted(model.jac_rows(3).tolist())[0] in (0, 1, 2)


def test_subset_pass_uses_the_full_batch_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 4, 4), latent_dim=3, jac_fraction=0.5,
                    backbone=MLPBackbone(hidden=[8], batch_norm=True))
    reference = InjFlow(image_shape=(1, 4, 4), latent_dim=3,
                        backbone=MLPBackbone(hidden=[8], batch_norm=True))
    reference.load_state_dict(model.state_dict())
    x = torch.rand(8, 1, 4, 4)
    model.train()
    reference.train()
    model.loss(x)
    with torch.no_grad():  # one train-mode pass: the running statistics move once
        reference.reconstruct(x)
    for (name, a), b in zip(model.named_buffers(), reference.buffers(), strict=True):
        if "running" in name or "num_batches" in name:
            torch.testing.assert_close(a, b)
    assert all(m.training for m in model.modules())  # modes restored


def decoder_grad(model: InjFlow, loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss.backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.decoder.parameters()])


def exact_sq_norm(model: InjFlow, x: torch.Tensor) -> torch.Tensor:
    """||J v||^2 on the sub-batch by forward-mode AD, the full batch's statistics in the graph."""
    z = model.encode(x)
    stats = BatchStatistics(model.decoder)
    with stats.capture(differentiable=True):
        model.decoder(z)
    rows = model.jac_rows(z.shape[0])
    with stats.frozen():
        return estimate_jacobian_sq_norm(model.decoder, z[rows], "forward").sq_norm


def test_finite_difference_subset_is_the_derivative_of_the_full_pass_decoder() -> None:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 4, 4), latent_dim=3, jac_fraction=0.5, bound="linear",
                    lam=0.5, eta=1e-4, jvp="finite_difference", fd_eps=1e-3,
                    backbone=MLPBackbone(hidden=[8], batch_norm=True))
    x = torch.rand(16, 1, 4, 4)
    torch.manual_seed(3)  # same rows, same probe
    reference = exact_sq_norm(model, x)
    torch.manual_seed(3)
    jac = model.loss(x).terms["jac"]  # linear bound, lam = 1/2, tiny eta: mean ||J v||^2
    assert jac.item() == pytest.approx(reference.mean().item(), rel=1e-2)
    # the quotient's base point comes from the full train-mode pass: held constant in the
    # sub-batch pass only, the statistics' gradient would enter times 1 / eps (300x the norm)
    exact, fd = decoder_grad(model, reference.mean()), decoder_grad(model, jac)
    assert (fd - exact).norm() <= 0.05 * exact.norm()


def test_differentiable_statistics_normalise_as_batchnorm_and_restore_it() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh())
    z = torch.randn(8, 3)
    stats = BatchStatistics(net)
    with stats.capture(differentiable=True):
        full = net(z)
    with stats.frozen():
        sub = net(z[:3])
        assert not net[1].training
    torch.testing.assert_close(sub, full[:3])
    (weight_grad,) = torch.autograd.grad(sub.sum(), net[0].weight)
    assert weight_grad.abs().sum() > 0
    assert net[1].training and "forward" not in vars(net[1])
    running = net[1].running_mean.clone()
    net(z)  # BatchNorm's own forward again: it updates its running statistics
    assert not torch.equal(net[1].running_mean, running)


def test_sync_batchnorm_across_processes_is_refused(monkeypatch) -> None:
    net = nn.SyncBatchNorm(3)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="sync_batchnorm=False, or with jac_fraction=1"):
        with BatchStatistics(net).capture():
            net(torch.randn(4, 3))


class RecordLoss(L.Callback):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(trainer.callback_metrics["train/loss"])


def run(tmp_path, ckpt_path=None) -> dict[int, float]:
    L.seed_everything(0)
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=3, jac_fraction=0.5,
                    constraint=Penalty(nu=1.3), backbone=MLPBackbone(hidden=[16], batch_norm=True))
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=8)
    record = RecordLoss()
    callbacks = [record,
                 ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3,
                                 save_top_k=-1, filename="{step}")]
    trainer = tiny_trainer(tmp_path, max_steps=6, enable_checkpointing=True, deterministic=True,
                           callbacks=callbacks, limit_val_batches=0)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return record.losses


def test_resume_is_exact_with_a_fraction(tmp_path) -> None:
    full = run(tmp_path / "full")
    resumed = run(tmp_path / "resumed", ckpt_path=tmp_path / "full" / "ckpt" / "step=3.ckpt")
    assert sorted(resumed) == [4, 5, 6]
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-5, abs=1e-6), step


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, True])
def test_bad_fraction_is_a_clear_error(bad) -> None:
    with pytest.raises(ValueError, match=r"jac_fraction must be in \(0, 1\]"):
        build(jac_fraction=bad)


def test_the_finite_difference_subset_estimate_is_eq_8_from_the_full_batch_decode() -> None:
    model = build(jac_fraction=0.5, jvp="finite_difference", fd_eps=0.01)
    z = torch.randn(6, d)
    torch.manual_seed(4)
    output, est = model._subset_estimate(z)
    torch.manual_seed(4)  # the same draws: the rows, then the probe v
    rows = model.jac_rows(6)
    v = torch.randn(len(rows), d)
    with torch.no_grad():
        full = model.decoder(z)
        jv = (model.decoder(z[rows] + 0.01 * v) - full[rows]) / 0.01
    assert torch.equal(output.detach(), full) and torch.equal(est.output.detach(), full[rows])
    assert torch.equal(est.sq_norm.detach(), jv.flatten(1).pow(2).sum(dim=1))
    assert torch.equal(est.v_sq_norm, v.pow(2).sum(dim=1))
