"""CompileModules: torch.compile'd encoder/decoder give the eager losses and gradients."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import CompileModules
from genae_lightning.callbacks.compile import compile_modules
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, GenerativeAutoencoder, InjFlow
from tests.conftest import tiny_trainer

SHAPE = (1, 8, 8)


def ae() -> AE:
    torch.manual_seed(0)
    return AE(image_shape=SHAPE, latent_dim=4, backbone=MLPBackbone(hidden=[32]))


def loss_and_grads(model: GenerativeAutoencoder, x: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    with model.step_rng(0, "train"):
        loss = model.loss(x).total
    loss.backward()
    return [loss.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_inductor_compiled_ae_trains_like_eager(tmp_path) -> None:
    """The real backend (C++ code generated and built with gcc on CPU)."""
    losses = {}
    for compiled in (False, True):
        model = ae()
        callbacks = [CompileModules()] if compiled else []
        trainer = tiny_trainer(tmp_path / str(compiled), callbacks=callbacks)
        trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=32,
                                                      batch_size=8))
        assert trainer.global_step == 2
        losses[compiled] = float(trainer.callback_metrics["train/loss"])
        assert (model.decoder._compiled_call_impl is not None) == compiled
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    # compiled in place: the same parameter names, so checkpoints load into an eager model
    assert set(model.state_dict()) == set(ae().state_dict())


@pytest.mark.parametrize("jac_fraction", [1.0, 0.5])
@pytest.mark.parametrize("jvp", ["forward", "finite_difference", "reverse"])
def test_injflow_every_jvp_mode_compiled_matches_eager(jvp, jac_fraction) -> None:
    """Forward-mode and double-backward passes fall back to eager; the rest is compiled.

    ``aot_eager`` traces with dynamo and AOTAutograd exactly as inductor does (where forward AD
    and double backward are unsupported) but skips code generation, so the test stays fast.
    With a fraction, the sub-batch pass runs with BatchNorm frozen at the full batch's statistics.
    """
    def build() -> InjFlow:
        torch.manual_seed(0)
        return InjFlow(image_shape=SHAPE, latent_dim=4, jvp=jvp, jac_fraction=jac_fraction,
                       backbone=MLPBackbone(hidden=[32], batch_norm=jac_fraction < 1))

    x = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(1))
    eager, compiled = build(), build()
    compile_modules(compiled, backend="aot_eager")
    for a, b in zip(loss_and_grads(eager, x), loss_and_grads(compiled, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_submodule_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no submodule 'backbone'"):
        compile_modules(ae(), ["backbone"])
