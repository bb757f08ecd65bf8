"""Non-finite guard, delicate terms at their edges, interrupts, input validation."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genae_lightning.autoencoder.base import NonFiniteLossError
from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import NonFiniteGuard
from genae_lightning.callbacks.reliability import INTERRUPTED_EXIT_CODE
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, InjFlow, LossOutput, load_method
from tests.conftest import REPO, tiny_trainer


class NaNAtStep(AE):
    """An AE whose loss is NaN at the given optimizer steps."""

    bad_steps: tuple[int, ...] = (2,)

    def loss(self, x):
        out = super().loss(x)
        if self.training and self.global_step in self.bad_steps:
            nan = out.terms["rec"] * float("nan")
            return LossOutput(nan, {"rec": nan})
        return out


def tiny_ae(cls=NaNAtStep) -> AE:
    torch.manual_seed(0)
    return cls(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[16]))


def data() -> SyntheticImages:
    return SyntheticImages(image_shape=(1, 8, 8), num_samples=40, batch_size=4)


def test_nan_stops_with_term_step_and_saved_weights(tmp_path) -> None:
    model = tiny_ae()
    trainer = tiny_trainer(tmp_path, max_steps=5, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss, rec at step 2") as err:
        trainer.fit(model, datamodule=data())
    assert "last finite values: {'loss'" in str(err.value)
    saved = tmp_path / "nonfinite-step=2.ckpt"
    assert saved.is_file() and str(saved) in str(err.value)
    reloaded = load_method(saved, trusted=[type(model)])
    for a, b in zip(reloaded.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the weights before the update that led to step 2
        assert torch.isfinite(a).all()


def test_skip_budget_skips_bad_batches_then_stops(tmp_path) -> None:
    model = tiny_ae()
    model.bad_steps = (2,)
    trainer = tiny_trainer(tmp_path, max_steps=4, callbacks=[NonFiniteGuard(skip_nonfinite=1)])
    trainer.fit(model, datamodule=data())
    assert int(model.nonfinite_skipped) == 1
    assert trainer.global_step == 4  # the skipped batch counts as a step but updates nothing
    assert all(torch.isfinite(p).all() for p in model.parameters())

    model = tiny_ae()
    model.bad_steps = (1, 2, 3)
    trainer = tiny_trainer(tmp_path, max_steps=6, callbacks=[NonFiniteGuard(skip_nonfinite=2)])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(model, datamodule=data())
    assert int(model.nonfinite_skipped) == 2


def test_injflow_log_term_is_finite_for_a_constant_decoder() -> None:
    model = InjFlow(image_shape=(1, 4, 4), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()  # J_g = 0: the clamp max(., eta^2 ||v||^2) keeps the log finite
    for jvp in ("forward", "finite_difference", "reverse"):
        model.jvp = jvp
        out = model.loss(torch.rand(4, 1, 4, 4))
        assert torch.isfinite(out.total), jvp
        out.total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


def test_finite_difference_under_bf16_autocast_is_finite_and_close() -> None:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 4, 4), latent_dim=3, jvp="finite_difference",
                    backbone=MLPBackbone(hidden=[8])).eval()
    x = torch.rand(8, 1, 4, 4)
    torch.manual_seed(1)
    ref = model.loss(x).terms["jac"]
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.loss(x).terms["jac"]
    assert torch.isfinite(low) and low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05)


def test_pixel_range_is_checked_once(tmp_path) -> None:
    class Wide(SyntheticImages):
        def load_tensors(self):
            t = super().load_tensors()
            return t._replace(train_images=t.train_images * 4 - 1)

    model = tiny_ae(AE)
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        tiny_trainer(tmp_path).fit(model, datamodule=Wide(image_shape=(1, 8, 8), num_samples=40,
                                                          batch_size=4))


def test_checkpoint_of_incompatible_version_is_refused(tmp_path) -> None:
    model = tiny_ae(AE)
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, datamodule=data())
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)
    state["genae"]["version"] = "7.1.0"
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match="genae-lightning 7.1.0, which is not compatible"):
        load_method(ckpt)


def test_prior_of_wrong_dimension_is_refused() -> None:
    from genae_lightning.priors import StandardNormal

    model = tiny_ae(AE)
    with pytest.raises(ValueError, match="prior dimension 5 != latent_dim 3"):
        model.set_posthoc_prior("gaussian", StandardNormal(5))


def test_sigterm_writes_a_resumable_checkpoint(tmp_path) -> None:
    """`genae fit` under SIGTERM saves interrupted.ckpt, exits 3, and the run resumes from it."""
    exe = str(Path(sys.executable).with_name("genae"))
    cfg = str(REPO / "configs" / "quickstart.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the literal penalty schedule, which (unlike the config's mapped one) lets the resume below
    # end the run early with another max_steps
    literal = ["--model.init_args.constraint", '{"class_path": "genae_lightning.methods.Penalty",'
               ' "init_args": {"reference_steps": null}}']
    args = [exe, "fit", "--config", cfg, "--trainer.max_steps", "100000",
            "--trainer.enable_progress_bar", "false", *literal]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        metrics = tmp_path / "outputs" / "quickstart" / "injflow_ln_digits" / "version_0"
        while time.time() < deadline and not (metrics / "hparams.yaml").exists():
            time.sleep(0.5)
        time.sleep(3)  # let it train a few hundred steps
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    ckpts = list(tmp_path.rglob("interrupted.ckpt"))
    assert ckpts, output[-2000:]
    assert proc.returncode == INTERRUPTED_EXIT_CODE, output[-2000:]
    assert f"exiting with status {INTERRUPTED_EXIT_CODE}" in output
    step = torch.load(ckpts[0], weights_only=False)["global_step"]
    assert step > 0
    assert not list(tmp_path.rglob("samples_gmm.png"))  # no end-of-fit work
    resumed = subprocess.run(
        [exe, "fit", "--config", cfg, "--trainer.max_steps", str(step + 20),
         "--trainer.enable_progress_bar", "false", *literal, "--ckpt_path", str(ckpts[0])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last = max(tmp_path.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert torch.load(last, weights_only=False)["global_step"] == step + 20
    assert (last.parent.parent / "samples_gmm.png").exists()  # in the resumed run's folder
