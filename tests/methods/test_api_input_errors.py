"""Python API inputs: bad image batches and sample counts get errors naming what was expected
and what came; ``precision="64-true"`` trains (InjFlow's Jacobian estimate in float64)."""

import numpy as np
import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior, ImageLogger
from genae_lightning.cli import main
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, VAE, GenerativeAutoencoder, InjFlow
from tests.conftest import REPO, tiny_trainer
from tests.methods.test_methods_contract import CONFIGS, SHAPE, build, config_id

ENTRY_POINTS = ["forward", "encode"]  # model(x) and model.encode(x)


@pytest.fixture(params=[AE, VAE], ids=lambda c: c.__name__)
def model(request: pytest.FixtureRequest) -> GenerativeAutoencoder:
    """A tiny AE, and a VAE (its encode goes through the Gaussian posterior)."""
    return build(request.param)


def call(model: GenerativeAutoencoder, entry: str, x: object) -> torch.Tensor:
    return model(x) if entry == "forward" else model.encode(x)


# ---------------------------------------------------------------- image batches


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_uint8_images_are_refused_with_the_conversion(model, entry) -> None:
    x = torch.randint(0, 256, (2, *SHAPE), dtype=torch.uint8)
    with pytest.raises(TypeError) as error:
        call(model, entry, x)
    message = str(error.value)
    assert type(model).__name__ in message
    assert "float images in [0, 1]" in message and "dtype uint8" in message
    assert "x.float() / 255" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_float64_images_to_a_float32_model_are_refused(model, entry) -> None:
    with pytest.raises(TypeError) as error:
        call(model, entry, torch.rand(2, *SHAPE, dtype=torch.float64))
    message = str(error.value)
    assert "weights are float32, got a batch of dtype float64" in message
    assert "x.to(torch.float32)" in message and "model.to(torch.float64)" in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_one_image_without_the_batch_dimension_is_refused(model, entry) -> None:
    with pytest.raises(ValueError) as error:
        call(model, entry, torch.rand(*SHAPE))
    message = str(error.value)
    assert "a batch of images (B, 1, 8, 8)" in message
    assert "one image of shape (1, 8, 8) without the batch dimension" in message
    assert "x.unsqueeze(0)" in message


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(1, 2, *SHAPE), ValueError, r"4-dimensional batch .* \(5 dimensions\)"),
        (torch.rand(3, 8, 8), ValueError, r"4-dimensional batch .* \(3 dimensions\)"),
        (torch.zeros(2, *SHAPE, dtype=torch.bool), TypeError, r"dtype bool; .* x\.float\(\) "),
        (np.zeros((2, *SHAPE), np.float32), TypeError, r"torch.Tensor .* got ndarray.*as_tensor"),
        ([[0.0]], TypeError, "got list"),
    ],
    ids=["5d", "3d-other-shape", "bool", "numpy", "list"],
)
def test_other_bad_batches_are_named(model, x, error, match) -> None:
    with pytest.raises(error, match=match):
        model(x)


def test_low_precision_models_take_batches_of_their_dtype() -> None:
    model = build(AE).eval()
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision casts the batch
            assert model(x.bfloat16()).shape == x.shape
        low = model.to(torch.bfloat16)  # a model in bfloat16 ("bf16-true")
        assert low(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="weights are bfloat16, got a batch of dtype float32"):
        low(x)


# ---------------------------------------------------------------- sample counts


@pytest.mark.parametrize(
    ("n", "error", "match"),
    [
        (0, ValueError, "n >= 1, got 0"),
        (-1, ValueError, "n >= 1, got -1"),
        (2.5, TypeError, r"positive int n .* got 2\.5 \(float\)"),
        ("4", TypeError, r"got '4' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
        (torch.tensor(4), TypeError, r"a tensor of shape \(\); pass int\(n\)"),
    ],
    ids=["zero", "negative", "float", "str", "bool", "tensor"],
)
def test_sample_refuses_a_count_that_is_not_a_positive_int(model, n, error, match) -> None:
    with pytest.raises(error, match=match) as raised:
        model.sample(n)
    assert f"{type(model).__name__}.sample(n)" in str(raised.value)


def test_sample_takes_python_and_numpy_ints(model) -> None:
    assert model.sample(3).shape == (3, *SHAPE)
    assert model.sample(np.int64(2)).shape == (2, *SHAPE)


# ---------------------------------------------------------------- precision "64-true"


def tiny_injflow(**kwargs) -> InjFlow:
    torch.manual_seed(0)
    kwargs.setdefault("backbone", MLPBackbone(hidden=[16]))
    return InjFlow(image_shape=SHAPE, latent_dim=4, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"jvp": "finite_difference"}, {"jvp": "reverse"},
     {"jac_fraction": 0.5, "jvp": "finite_difference",
      "backbone": MLPBackbone(hidden=[16], batch_norm=True)}],
    ids=["forward", "finite_difference", "reverse", "sub-batch-batchnorm"],
)
def test_injflow_trains_in_float64(kwargs, tmp_path) -> None:
    model = tiny_injflow(**dict(kwargs))
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    callbacks = [FitLatentPrior(n_components=2, priors=("gaussian",)), ImageLogger(n=4)]
    trainer = tiny_trainer(tmp_path, precision="64-true", callbacks=callbacks)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert model.sample(3, prior="gaussian").dtype == torch.float64
    assert (tmp_path / "recon.png").is_file()


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_every_method_trains_two_steps_in_float64(config, tmp_path) -> None:
    cls, kwargs = config
    model = build(cls, **kwargs)
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    trainer = tiny_trainer(tmp_path, precision="64-true")
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_quickstart_trains_with_precision_64_true(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
          "--trainer.precision", "64-true", "--trainer.max_steps", "3",
          "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"])
    [ckpt] = tmp_path.rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert state["encoder.1.weight"].dtype == torch.float64
    assert (ckpt.parent.parent / "samples_gmm.png").is_file()
