"""A diverging run stops with weights that train on; interrupts end with a status and a word."""

import functools
import os
import signal

import lightning as L
import pytest
import torch

from genae_lightning.autoencoder.base import NonFiniteLossError
from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import (
    GracefulInterrupt,
    NonFiniteGuard,
    reliability,
    was_interrupted,
)
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, load_method
from tests.conftest import tiny_trainer


def ae(lr: float) -> AE:
    """A tiny AE with an unbounded decoder, so a huge learning rate overflows its loss."""
    torch.manual_seed(0)
    return AE(image_shape=(1, 8, 8), latent_dim=3,
              backbone=MLPBackbone(hidden=[16], output_activation="identity"),
              optimizer=functools.partial(torch.optim.Adam, lr=lr))


def data() -> SyntheticImages:
    return SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=4)


class Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_huge_lr_stop_saves_weights_that_resume_with_a_sane_lr(tmp_path) -> None:
    model = ae(lr=1e6)
    initial = [p.detach().clone() for p in model.parameters()]
    trainer = tiny_trainer(tmp_path, max_steps=20, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss, rec at step 1") as err:
        trainer.fit(model, datamodule=data())
    saved = tmp_path / "nonfinite-step=1.ckpt"
    message = str(err.value)
    assert f"Saved the weights from before the update of step 0 (the last one whose loss was " \
           f"finite; the module holds them too) to {saved}" in message
    assert f"--ckpt_path {saved}" in message and "lr <lower>" in message
    state = torch.load(saved, weights_only=False)
    assert "optimizer" not in state["hyper_parameters"]  # the diverged lr is not carried over
    reloaded = load_method(saved, trusted=[type(model)])
    for p, p0 in zip(reloaded.parameters(), initial, strict=True):
        assert torch.isfinite(p).all() and p.abs().max() < 10  # not the ~1e6 of the bad update
        torch.testing.assert_close(p, p0)  # exactly the weights before update 0

    resumed, losses = ae(lr=1e-3), Losses()
    trainer = tiny_trainer(tmp_path, max_steps=8, callbacks=[NonFiniteGuard(), losses])
    trainer.fit(resumed, datamodule=data(), ckpt_path=saved)
    assert trainer.global_step == 8 and len(losses.losses) >= 5
    assert all(map(lambda v: torch.isfinite(torch.tensor(v)), losses.losses)), losses.losses
    assert trainer.optimizers[0].param_groups[0]["lr"] == 1e-3  # the configured lr, not 1e6


def test_without_the_guard_the_stop_says_nothing_was_saved(tmp_path) -> None:
    trainer = tiny_trainer(tmp_path, max_steps=20)
    with pytest.raises(NonFiniteLossError, match="No checkpoint was written: add the "
                                                 "NonFiniteGuard callback"):
        trainer.fit(ae(lr=1e6), datamodule=data())
    assert not list(tmp_path.rglob("*.ckpt"))


class NaNAtStepOne(AE):
    def loss(self, x):
        out = super().loss(x)
        if self.global_step == 1:
            return type(out)(out.total * float("nan"), {"rec": out.terms["rec"] * float("nan")})
        return out


def test_the_first_guard_of_a_run_is_the_one_used(tmp_path) -> None:
    torch.manual_seed(0)
    model = NaNAtStepOne(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    trainer = tiny_trainer(tmp_path, max_steps=3,
                           callbacks=[NonFiniteGuard(skip_nonfinite=3), NonFiniteGuard()])
    trainer.fit(model, datamodule=data())  # the first guard's budget skips the bad batch
    assert int(model.nonfinite_skipped) == 1 and trainer.global_step == 3


def test_snapshot_cost_is_one_copy_per_step(tmp_path, monkeypatch) -> None:
    calls = []
    original = torch._foreach_copy_
    monkeypatch.setattr(torch, "_foreach_copy_", lambda *a: (calls.append(1), original(*a)))
    trainer = tiny_trainer(tmp_path, max_steps=5, callbacks=[NonFiniteGuard()])
    trainer.fit(ae(lr=1e-3), datamodule=data())
    assert len(calls) == 5


class SignalAtTrainEnd(L.Callback):
    """Sends this process SIGTERM while the end-of-fit work runs."""

    def on_train_end(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_during_end_of_fit_work_says_what_is_finished(tmp_path, monkeypatch) -> None:
    said: list[str] = []
    monkeypatch.setattr(reliability, "rank_zero_info", said.append)
    trainer = tiny_trainer(tmp_path, max_steps=3,
                           callbacks=[GracefulInterrupt(), SignalAtTrainEnd()])
    trainer.fit(ae(lr=1e-3), datamodule=data())
    assert trainer.global_step == 3 and not was_interrupted(trainer)
    assert not list(tmp_path.rglob("interrupted.ckpt"))
    assert len(said) == 1, said
    assert said[0].startswith("received SIGTERM after the last training step, during the "
                              "end-of-fit work (SignalAtTrainEnd: post-hoc priors")
    assert "finishing it, then exiting" in said[0] and "a second signal stops at once" in said[0]
    assert "checkpointing after this step" not in said[0]


def test_a_second_signal_stops_at_once(monkeypatch) -> None:
    monkeypatch.setattr(reliability, "rank_zero_info", lambda message: None)
    callback = GracefulInterrupt()
    callback._handler(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):
        callback._handler(signal.SIGTERM, None)



class SignalMidStep(L.Callback):
    """Sends this process a signal between the backward and the optimizer step of step 1."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 1:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_step_checkpoints_at_the_step_boundary(tmp_path, monkeypatch, signum):
    """The step finishes, then interrupted.ckpt is written and fit returns: no KeyboardInterrupt
    (Lightning's exit status 1) and no SIGTERMException (its status 0), its flag cleared."""
    said: list[str] = []
    monkeypatch.setattr(reliability, "rank_zero_info", said.append)
    before = signal.getsignal(signum)
    model = ae(lr=1e-3)
    trainer = tiny_trainer(tmp_path, max_steps=20,
                           callbacks=[GracefulInterrupt(), SignalMidStep(signum)])
    trainer.fit(model, datamodule=data())
    assert trainer.global_step == 2 and was_interrupted(trainer)
    assert not trainer.received_sigterm
    path = tmp_path / "checkpoints" / "interrupted.ckpt"
    saved = torch.load(path, weights_only=False)
    assert saved["global_step"] == 2
    for key, value in model.state_dict().items():  # the weights after the finished step
        torch.testing.assert_close(saved["state_dict"][key], value)
    assert said == [f"received {signal.Signals(signum).name}: checkpointing after this step, "
                    "then exiting with status 3; a second signal stops at once",
                    f"saved {path} at step 2; resume with --ckpt_path {path}"]
    assert signal.getsignal(signum) is before


class FailsAtStepOne(AE):
    def loss(self, x):
        if self.global_step == 1:
            raise RuntimeError("boom")
        return super().loss(x)


def test_an_error_writes_no_interrupt_checkpoint_and_restores_the_handlers(tmp_path) -> None:
    """Only a signal saves (``save_on_exception`` would save on this error too), and after the
    error the handlers from before the fit are back, though Lightning's teardown runs last."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    torch.manual_seed(0)
    model = FailsAtStepOne(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    trainer = tiny_trainer(tmp_path, max_steps=5, callbacks=[GracefulInterrupt()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(model, datamodule=data())
    assert not list(tmp_path.rglob("*.ckpt")) and not was_interrupted(trainer)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

class NaNFromTheStart(AE):
    def loss(self, x):
        out = super().loss(x)
        return type(out)(out.total * float("nan"), {"rec": out.terms["rec"] * float("nan")})


def test_a_loss_non_finite_before_any_update_saves_nothing(tmp_path) -> None:
    torch.manual_seed(0)
    model = NaNFromTheStart(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    trainer = tiny_trainer(tmp_path, max_steps=3, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteLossError, match="at step 0 .* No checkpoint was written: no "
                                                 "update was applied in this run yet"):
        trainer.fit(model, datamodule=data())
    assert not list(tmp_path.rglob("*.ckpt"))
