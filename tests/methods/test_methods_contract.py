"""One contract every method honours: finite loss, gradients, 2 training steps, sampling, reload."""

import inspect
import math

import pytest
import torch

import genae_lightning.methods as methods
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AugmentedLagrangian, GenerativeAutoencoder, load_method
from genae_lightning.priors import DecoupledPrior
from tests.conftest import tiny_trainer

SHAPE = (1, 8, 8)
METHODS = sorted(
    (obj for name in methods.__all__ if inspect.isclass(obj := getattr(methods, name))
     and issubclass(obj, GenerativeAutoencoder) and obj is not GenerativeAutoencoder),
    key=lambda c: c.__name__,
)


# The other choices of the methods that take objects (a fresh object per build: see `build`).
CHOICES = [
    (methods.VAE, {"prior": lambda: DecoupledPrior(flow_layers=2, flow_hidden=8)}),  # dpVAE
    (methods.InjFlow, {"constraint": AugmentedLagrangian}),
]
# every method with its defaults and its other choices, plus the other J v modes of the methods
# that estimate J v (RAE's default regulariser is "l2", so RAE-GP is added with every mode)
CONFIGS = [(cls, {}) for cls in METHODS] + CHOICES + [
    (cls, dict(extra, jvp=mode))
    for cls, extra in ((methods.InjFlow, {}), (methods.CAE, {}),
                       (methods.RAE, {"regularizer": "gp"}))
    for mode in ("forward", "finite_difference", "reverse")
    if extra or mode != "forward"
]


def config_id(config: tuple[type, dict]) -> str:
    cls, kwargs = config
    return "-".join([cls.__name__, *(v if isinstance(v, str) else
                                     getattr(v, "__name__", k).replace("<lambda>", k)
                                     for k, v in kwargs.items())])


def build(cls: type[GenerativeAutoencoder], **kwargs) -> GenerativeAutoencoder:
    """A tiny ``cls``; ``prior``/``constraint`` given as factories are called (fresh modules)."""
    torch.manual_seed(0)
    kwargs = {k: v() if k in ("prior", "constraint") and not isinstance(v, torch.nn.Module) else v
              for k, v in kwargs.items()}
    return cls(image_shape=SHAPE, latent_dim=4, backbone=MLPBackbone(hidden=[32]), **kwargs)


def test_every_method_is_covered() -> None:
    assert {"AE", "VAE", "InjFlow"} <= {c.__name__ for c in METHODS}


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_loss_is_finite_scalar_with_named_terms(cls) -> None:
    model = build(cls)
    out = model.loss(torch.rand(6, *SHAPE))
    assert out.total.dim() == 0 and torch.isfinite(out.total)
    assert out.terms, "every method names its loss terms"
    for name, value in out.terms.items():
        assert value.dim() == 0 and torch.isfinite(value), name


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_trains_two_steps_samples_and_reloads(config, tmp_path) -> None:
    cls, kwargs = config
    model = build(cls, **kwargs)
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
    check_logged_terms(model, trainer, data)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert any(changed), "two optimizer steps must change the parameters"
    assert model.sample(5).shape == (5, *SHAPE)

    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    reloaded = load_method(ckpt)
    assert type(reloaded) is cls
    x = torch.rand(3, *SHAPE)
    model.eval()
    reloaded.eval()
    torch.testing.assert_close(reloaded.reconstruct(x), model.reconstruct(x))
    torch.testing.assert_close(model(x), model.reconstruct(x))  # model(x) reconstructs


# logged by the training step only, not terms of loss(x)
TRAIN_ONLY = {
    "nonfinite_skipped",  # NonFiniteGuard's count of skipped steps
    "disc",  # adversarial methods: the discriminator's own loss (its optimizer's objective)
}


def check_logged_terms(model: GenerativeAutoencoder, trainer, data: SyntheticImages) -> None:
    """Every term logged in training is finite; one non-zero in training is non-zero in val/test.

    A term that validation computes differently from training (a J v estimate run under
    inference mode, say) shows up here as 0 or NaN.
    """
    train = {k.removeprefix("train/"): v for k, v in trainer.callback_metrics.items()
             if k.startswith("train/")}
    assert "loss" in train and len(train) > 1, sorted(trainer.callback_metrics)
    for name, value in train.items():
        assert torch.isfinite(value).all(), f"train/{name} = {value}"
    for stage, run in (("val", trainer.validate), ("test", trainer.test)):
        logged = run(model, datamodule=data, verbose=False)[0]
        for name, value in train.items():
            if name in TRAIN_ONLY:
                continue
            got = logged.get(f"{stage}/{name}")
            assert got is not None, f"{stage}/{name} not logged; logged: {sorted(logged)}"
            assert math.isfinite(got), f"{stage}/{name} = {got}"
            if float(value) != 0.0:
                assert got != 0.0, f"{stage}/{name} = 0 but train/{name} = {float(value)}"


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_wrong_image_shape_is_a_clear_error(cls) -> None:
    model = build(cls)
    with pytest.raises(ValueError, match="built for images of shape"):
        model.loss(torch.rand(2, 1, 9, 9))
