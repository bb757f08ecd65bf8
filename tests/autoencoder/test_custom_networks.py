"""Every method takes your own ``encoder=``/``decoder=`` modules instead of a backbone."""

import inspect
import re
import sys
import types

import pytest
import torch
from torch import nn

import genae_lightning.methods as methods
from genae_lightning.autoencoder.gaussian import GaussianPosteriorAutoencoder
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import GenerativeAutoencoder, load_method
from genae_lightning.trust import UntrustedClassError
from tests.conftest import REPO, tiny_trainer

SHAPE, D = (1, 8, 8), 4
METHODS = sorted(
    (obj for name in methods.__all__ if inspect.isclass(obj := getattr(methods, name))
     and issubclass(obj, GenerativeAutoencoder) and obj is not GenerativeAutoencoder),
    key=lambda c: c.__name__,
)


def networks(cls: type, latent_dim: int = D) -> tuple[nn.Module, nn.Module]:
    """A small MLP encoder (2d outputs for Gaussian posteriors) and decoder."""
    width = 2 * latent_dim if issubclass(cls, GaussianPosteriorAutoencoder) else latent_dim
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ELU(), nn.Linear(32, width))
    decoder = nn.Sequential(nn.Linear(latent_dim, 32), nn.ELU(), nn.Linear(32, 64),
                            nn.Unflatten(1, SHAPE), nn.Sigmoid())
    return encoder, decoder


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.__name__)
def test_own_modules_train_two_steps_and_reconstruct(cls, tmp_path) -> None:
    torch.manual_seed(0)
    encoder, decoder = networks(cls)
    model = cls(image_shape=SHAPE, latent_dim=D, encoder=encoder, decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder
    assert "encoder" not in model.hparams and "decoder" not in model.hparams
    before = [p.detach().clone() for p in encoder.parameters()]
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=32,
                                                  batch_size=8))
    assert trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, encoder.parameters(), strict=True))
    model.eval()
    x = torch.rand(3, *SHAPE)
    assert model(x).shape == (3, *SHAPE)
    torch.testing.assert_close(model(x), decoder(model.encode(x)))


def test_backbone_and_modules_together_are_refused() -> None:
    encoder, decoder = networks(methods.AE)
    with pytest.raises(ValueError, match="pass either a backbone .* not both"):
        methods.AE(image_shape=SHAPE, latent_dim=D, backbone=MLPBackbone(), encoder=encoder,
                   decoder=decoder)


@pytest.mark.parametrize("given", ["encoder", "decoder"])
def test_one_module_without_the_other_is_refused(given) -> None:
    encoder, decoder = networks(methods.AE)
    kwargs = {"encoder": encoder} if given == "encoder" else {"decoder": decoder}
    missing = "decoder" if given == "encoder" else "encoder"
    with pytest.raises(ValueError, match=f"got {given}= but no {missing}=: pass both"):
        methods.InjFlow(image_shape=SHAPE, latent_dim=D, **kwargs)


def test_neither_builds_the_default_conv_backbone() -> None:
    model = methods.AE(image_shape=SHAPE, latent_dim=D)
    assert any(isinstance(m, nn.Conv2d) for m in model.encoder.modules())


def test_mismatched_shapes_are_named() -> None:
    encoder, decoder = networks(methods.AE, latent_dim=3)  # codes of 3, not 4
    with pytest.raises(ValueError, match=r"encoder maps a batch of shape \(2, 1, 8, 8\) to "
                                         r"\(2, 3\), expected \(2, 4\)"):
        methods.AE(image_shape=SHAPE, latent_dim=D, encoder=encoder, decoder=decoder)
    encoder, _ = networks(methods.VAE)
    with pytest.raises(ValueError, match=r"to \(2, 4\), expected \(2, 8\).*Gaussian posterior"):
        methods.VAE(image_shape=SHAPE, latent_dim=D, encoder=networks(methods.AE)[0],
                    decoder=networks(methods.AE)[1])
    _, decoder = networks(methods.AE)
    with pytest.raises(ValueError, match=r"decoder maps a batch of shape \(2, 4\) to "
                                         r"\(2, 1, 8, 8\), expected \(2, 1, 12, 12\)"):
        methods.AE(image_shape=(1, 12, 12), latent_dim=D,
                   encoder=nn.Sequential(nn.Flatten(), nn.Linear(144, D)), decoder=decoder)
    with pytest.raises(ValueError, match=r"decoder failed on a batch of shape \(2, 5\)"):
        methods.AE(image_shape=SHAPE, latent_dim=5,
                   encoder=nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), decoder=decoder)


def test_dry_forward_leaves_batchnorm_statistics_and_mode_alone() -> None:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, D), nn.BatchNorm1d(D))
    _, decoder = networks(methods.AE)
    methods.AE(image_shape=SHAPE, latent_dim=D, encoder=encoder, decoder=decoder)
    assert encoder.training and int(encoder[2].num_batches_tracked) == 0


@pytest.mark.parametrize("cls", [methods.InjFlow, methods.VAE, methods.SWAE],
                         ids=lambda c: c.__name__)
def test_checkpoint_round_trip_needs_the_modules_again(cls, tmp_path) -> None:
    torch.manual_seed(0)
    model = cls(image_shape=SHAPE, latent_dim=D, **dict(zip(("encoder", "decoder"),
                                                             networks(cls), strict=True)))
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=32,
                                                  batch_size=8))
    ckpt = tmp_path / "own.ckpt"
    trainer.save_checkpoint(ckpt)

    encoder, decoder = networks(cls)
    reloaded = cls.load_from_checkpoint(ckpt, encoder=encoder, decoder=decoder)
    assert reloaded.encoder is encoder
    x = torch.rand(3, *SHAPE)
    model.eval()
    reloaded.eval()
    torch.testing.assert_close(reloaded(x), model(x))

    message = "trained with your own encoder .* pass them again"
    with pytest.raises(ValueError, match=message):
        cls.load_from_checkpoint(ckpt)
    with pytest.raises(ValueError, match=message):
        cls.load_from_checkpoint(ckpt, encoder=networks(cls)[0])
    with pytest.raises(ValueError, match=message):
        load_method(ckpt)  # what `genae sample` and `genae evaluate` use


def docs_blocks() -> list[str]:
    """The Python code blocks of docs/backbones.md."""
    text = (REPO / "docs" / "backbones.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_encoder_decoder_example_runs() -> None:
    namespace: dict = {}
    exec(docs_blocks()[0], namespace)  # noqa: S102 - the documented example
    assert namespace["x_hat"].shape == (8, 1, 28, 28)


def test_docs_backbone_example_trains_and_loads_weights_only(tmp_path, monkeypatch) -> None:
    module = types.ModuleType("docs_backbones_example")  # as if saved in a file and imported
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(docs_blocks()[2], module.__dict__)  # noqa: S102 - the documented TinyMLP
    torch.manual_seed(0)
    model = methods.VAE(image_shape=SHAPE, latent_dim=D, backbone=module.TinyMLP(16))
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=32,
                                                  batch_size=8))
    ckpt = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)
    with pytest.raises(UntrustedClassError, match="docs_backbones_example.TinyMLP"):
        load_method(ckpt)  # a file never chooses a class of yours: the caller hands it over
    reloaded = load_method(ckpt, trusted=[module.TinyMLP])
    assert reloaded.hparams["backbone"]["class_path"] == "docs_backbones_example.TinyMLP"
    x = torch.rand(3, *SHAPE)
    model.eval()
    reloaded.eval()
    torch.testing.assert_close(reloaded(x), model(x))
