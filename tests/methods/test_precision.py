"""Mixed precision: every method's loss stays finite and close to float32 under autocast."""

import pytest
import torch

from genae_lightning.data import SyntheticImages
from genae_lightning.methods import GenerativeAutoencoder, LossOutput
from tests.conftest import tiny_trainer
from tests.methods.test_methods_contract import CHOICES, METHODS, SHAPE, build, config_id

# bfloat16 keeps 8 significant bits (unit roundoff 2^-8 = 0.4%) and float16 11 bits; autocast
# rounds every linear/conv output to them, so a float32 loss built from those outputs is off by
# a few roundoffs (measured: at most 0.3% for bf16 on these tiny MLPs once the delicate terms run
# in float32). 1% leaves room for that and still catches a term computed in low precision: before
# the float32 fixes, InfoVAE's MMD moved its bf16 loss by 44% and LPGA's log-det by 10%.
RTOL = 1e-2
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def loss_in(model: GenerativeAutoencoder, x: torch.Tensor, dtype: torch.dtype | None) -> LossOutput:
    """The loss on x in eval mode with the validation step's RNG stream, under autocast(dtype)."""
    model.eval()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        with model.step_rng(0, "val"):
            out = model.loss(x.clone())
    return LossOutput(out.total.detach(), {k: v.detach() for k, v in out.terms.items()})


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_loss_under_autocast_is_finite_and_close_to_float32(cls, dtype) -> None:
    model = build(cls)
    x = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(1))
    full = loss_in(model, x, None)
    mixed = loss_in(model, x, dtype)
    assert mixed.total.dtype == torch.float32, "losses are reduced in float32"
    assert torch.isfinite(mixed.total), f"non-finite loss under {dtype}"
    scale = max(1.0, abs(float(full.total)))
    assert float(mixed.total) == pytest.approx(float(full.total), rel=RTOL, abs=RTOL), "total"
    for name, value in full.terms.items():
        low = mixed.terms[name]
        assert torch.isfinite(low), f"non-finite {name} under {dtype}"
        # each term may move the loss by at most RTOL of its size (terms near 0, e.g. a KL at
        # initialisation, carry the rounding of their inputs, not a relative precision)
        assert abs(float(low) - float(value)) <= RTOL * scale, name


FIT_CONFIGS = [(c, {}) for c in METHODS if c.__name__ in {"InjFlow", "LPGA", "WAEGAN", "VAE"}]
FIT_CONFIGS += [CHOICES[0]]  # the VAE with the decoupled prior (dpVAE)


@pytest.mark.parametrize("config", FIT_CONFIGS, ids=config_id)
def test_bf16_mixed_trainer_fits_two_steps(config, tmp_path) -> None:
    cls, kwargs = config
    model = build(cls, **kwargs)
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    trainer = tiny_trainer(tmp_path, precision="bf16-mixed")
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_mixed_precision_fits_on_gpu(cls, precision, tmp_path) -> None:
    model = build(cls)
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    trainer = tiny_trainer(tmp_path, accelerator="gpu", precision=precision)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
