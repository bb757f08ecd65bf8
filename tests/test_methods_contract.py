"""One contract every method honours: finite loss, gradients, 2 training steps, sampling, reload."""

import inspect

import pytest
import torch

import genae_lightning.methods as methods
from genae_lightning.backbones import MLPBackbone
from genae_lightning.checkpoint import load_method
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import GenerativeAutoencoder
from tests.conftest import tiny_trainer

SHAPE = (1, 8, 8)
METHODS = sorted(
    (obj for name in methods.__all__ if inspect.isclass(obj := getattr(methods, name))
     and issubclass(obj, GenerativeAutoencoder) and obj is not GenerativeAutoencoder),
    key=lambda c: c.__name__,
)


def build(cls: type[GenerativeAutoencoder]) -> GenerativeAutoencoder:
    torch.manual_seed(0)
    return cls(image_shape=SHAPE, latent_dim=4, backbone=MLPBackbone(hidden=[32]))


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


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_trains_two_steps_samples_and_reloads(cls, tmp_path) -> None:
    model = build(cls)
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2
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


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_wrong_image_shape_is_a_clear_error(cls) -> None:
    model = build(cls)
    with pytest.raises(ValueError, match="built for images of shape"):
        model.loss(torch.rand(2, 1, 9, 9))
