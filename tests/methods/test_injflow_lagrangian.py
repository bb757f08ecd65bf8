"""InjFlow's augmented-Lagrangian option: the loss, dual ascent, checkpoints and exact resume."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genae_lightning.autoencoder.constraints import DualAscentMultiplier
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import debiased, dual_ascent, moving_average
from genae_lightning.methods import AugmentedLagrangian, InjFlow, Penalty
from tests.commands.test_resume import RecordLoss
from tests.conftest import tiny_trainer
from tests.methods.test_injflow import SHAPE, LinearBackbone, d


def build(**kw) -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(image_shape=SHAPE, latent_dim=d, backbone=LinearBackbone(), prior_weight=0.1,
                   **kw)


def test_penalty_default_has_no_multipliers() -> None:
    model = build()
    assert isinstance(model.constraint, Penalty)
    assert not any("multiplier" in key for key in model.state_dict())


def test_lagrangian_adds_multiplier_terms_to_the_penalty_loss() -> None:
    penalty = build()
    lagrangian = build(constraint=AugmentedLagrangian(kappa=0.5))
    lagrangian.constraint.rec_multiplier.multiplier.fill_(2.0)
    lagrangian.constraint.inj_multiplier.multiplier.fill_(3.0)
    x = torch.rand(4, *SHAPE)
    torch.manual_seed(1)
    base = penalty.loss(x)
    torch.manual_seed(1)
    out = lagrangian.loss(x)
    rec, inj = base.terms["rec"], base.terms["inj"]
    torch.testing.assert_close(out.total, base.total + 2.0 * (rec - 0.5) + 3.0 * inj)
    assert out.terms.keys() == base.terms.keys()
    # lambda is held fixed in the primal step: d total / d rec = mu + lambda
    (grad,) = torch.autograd.grad(out.total, lagrangian.decoder[0].weight, retain_graph=True)
    assert torch.isfinite(grad).all()


def test_dual_ascent_raises_the_multiplier_while_violated_and_lowers_it_with_slack() -> None:
    assert dual_ascent(torch.tensor(1.0), torch.tensor(0.5), lr=0.2) > 1.0
    assert dual_ascent(torch.tensor(1.0), torch.tensor(-0.5), lr=0.2) < 1.0
    assert dual_ascent(torch.tensor(0.0), torch.tensor(-0.5), lr=0.2) == 0.0  # projected
    ema = moving_average(torch.tensor(0.0), torch.tensor(3.0), 0.9)
    torch.testing.assert_close(debiased(ema, 0.9, 1), torch.tensor(3.0))

    multiplier = DualAscentMultiplier(target=1.0, lr=0.1, decay=0.5)
    values = []
    for _ in range(5):  # constraint value 3 > target 1: violated, lambda grows every step
        multiplier.update(torch.tensor(3.0))
        values.append(float(multiplier.multiplier))
    assert values == sorted(values) and values[0] == pytest.approx(0.2)
    for _ in range(50):  # now 0 < target: slack, lambda falls back to 0
        multiplier.update(torch.tensor(0.0))
    assert float(multiplier.multiplier) == 0.0


def test_training_raises_the_multipliers_and_they_are_in_the_checkpoint(tmp_path) -> None:
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[16]),
                    constraint=AugmentedLagrangian(), eta=2.0)  # eta large: injectivity violated
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=32, batch_size=8)
    trainer = tiny_trainer(tmp_path, max_steps=3)
    trainer.fit(model, datamodule=data)
    constraint = model.constraint
    assert int(constraint.rec_multiplier.steps) == 3
    assert float(constraint.rec_multiplier.multiplier) > 0  # kappa = 0 < E||x - g(h(x))||^2
    assert float(constraint.inj_multiplier.multiplier) > 0
    assert float(constraint.mu) == 1.0 and float(constraint.mu_in) == 1.0  # fixed
    assert float(trainer.callback_metrics["penalty/lambda"]) > 0
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    torch.testing.assert_close(state["constraint.rec_multiplier.multiplier"],
                               constraint.rec_multiplier.multiplier)
    assert "constraint.inj_multiplier.ema" in state


def test_lagrangian_settings_are_saved_as_plain_hyperparameters(tmp_path) -> None:
    model = build(constraint=AugmentedLagrangian(kappa=0.5, dual_lr=0.01))
    assert model.hparams.constraint == {
        "class_path": "genae_lightning.autoencoder.constraints.AugmentedLagrangian",
        "init_args": {"kappa": 0.5, "dual_lr": 0.01, "dual_lr_in": 1.0, "ema_decay": 0.99}}


def _run(tmp_path, max_steps: int, ckpt_path=None) -> tuple[dict[int, float], InjFlow]:
    L.seed_everything(0)
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]),
                    constraint=AugmentedLagrangian(kappa=1.0, dual_lr=0.05), eta=1.0)
    data = SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=8)
    record = RecordLoss()
    callbacks = [record, ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3,
                                         save_top_k=-1, filename="{step}")]
    trainer = tiny_trainer(tmp_path, max_steps=max_steps, enable_checkpointing=True,
                           deterministic=True, callbacks=callbacks)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return record.losses, model


def test_multipliers_are_restored_exactly_on_resume(tmp_path) -> None:
    full, full_model = _run(tmp_path / "full", 7)
    resumed, resumed_model = _run(tmp_path / "resumed", 7, tmp_path / "full/ckpt/step=3.ckpt")
    assert sorted(resumed) == [4, 5, 6, 7]
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-5, abs=1e-6), step
    assert float(full_model.constraint.rec_multiplier.multiplier) > 0
    for key, value in full_model.constraint.state_dict().items():
        torch.testing.assert_close(resumed_model.constraint.state_dict()[key], value)


def test_validation_under_inference_mode_sees_the_true_jacobian_term() -> None:
    model = build()
    x = torch.rand(4, *SHAPE)
    with torch.inference_mode():  # as Lightning runs validation
        out = model._compute_loss(x, batch_idx=0, stage="val")
    with model.step_rng(0, "val"):
        expected = model.loss(x).terms["jac"].detach()
    torch.testing.assert_close(out.terms["jac"], expected)  # not the eta clamp of J v = 0


@pytest.mark.parametrize(
    ("make", "match"),
    [(lambda: AugmentedLagrangian(kappa=-1.0), "kappa must be >= 0"),
     (lambda: AugmentedLagrangian(dual_lr=0.0), "dual step size"),
     (lambda: AugmentedLagrangian(ema_decay=1.0), "decay"),
     (lambda: Penalty(nu=0.0), "nu and scale must be > 0")],
)
def test_bad_constraint_arguments_are_clear_errors(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError, match="constraint must be a genae_lightning"):
        build(constraint="barrier")
