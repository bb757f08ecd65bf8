"""SWAE: objective (10) on tiny tensors, pseudo-input initialisation at fit, prior, denoising."""

from functools import partial

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import denoising_error, sum_squared_error
from genae_lightning.methods import SWAE, load_method
from tests.conftest import tiny_trainer

SHAPE = (1, 4, 4)


def build(**kwargs) -> SWAE:
    torch.manual_seed(0)
    kwargs.setdefault("num_pseudo_inputs", 5)
    return SWAE(image_shape=SHAPE, latent_dim=2, backbone=MLPBackbone(hidden=[8]), **kwargs)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_loss_equals_objective_10_on_tiny_tensors(beta) -> None:
    model = build(beta=beta, alpha=0.7)
    x = torch.rand(3, *SHAPE)
    torch.manual_seed(1)
    out = model.loss(x)

    u = model.pseudo_inputs.u
    nearest = [min(range(5), key=lambda k, xi=xi: (xi - u[k]).pow(2).sum().item()) for xi in x]
    mean, logvar = model.prior.net(u[nearest]).chunk(2, dim=1)
    torch.manual_seed(1)
    z_d = mean + (0.5 * logvar).exp() * torch.randn(3, 2)
    z_e = model.encoder(x)
    x_loss = ((x - model.decoder(z_d)) ** 2).sum(dim=(1, 2, 3))
    rec = ((x - model.decoder(z_e)) ** 2).sum(dim=(1, 2, 3))
    z_loss = ((z_e - z_d) ** 2).sum(dim=1)
    expected = (beta * x_loss + (1 - beta) * rec + 0.7 * z_loss).mean()
    torch.testing.assert_close(out.total, expected)
    torch.testing.assert_close(out.terms["x_loss"], x_loss.mean())
    torch.testing.assert_close(out.terms["rec"], rec.mean())
    torch.testing.assert_close(out.terms["z_loss"], z_loss.mean())


@pytest.mark.parametrize("nearest", ["l2", "cosine", "latent"])
def test_every_part_is_trained(nearest) -> None:
    model = build(nearest=nearest)
    model.loss(torch.rand(6, *SHAPE)).total.backward()
    for name, module in [("encoder", model.encoder), ("decoder", model.decoder),
                         ("prior network", model.prior.net)]:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name
    assert model.pseudo_inputs.u.grad.abs().sum() > 0


def test_pseudo_inputs_start_as_training_samples_and_survive_reload(tmp_path) -> None:
    model = SWAE(image_shape=SHAPE, latent_dim=2, num_pseudo_inputs=6,
                 backbone=MLPBackbone(hidden=[8]), optimizer=partial(torch.optim.SGD, lr=0.0))
    data = SyntheticImages(image_shape=SHAPE, num_samples=20, batch_size=4)
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=data)
    assert model.pseudo_inputs.is_initialized
    train = data.train_dataset.images.float().flatten(1)
    dist = torch.cdist(model.pseudo_inputs.u.detach().flatten(1), train, compute_mode=
                       "donot_use_mm_for_euclid_dist")
    assert dist.min(dim=1).values.max() < 1e-6, "every pseudo-input is a training sample"
    assert len(set(dist.argmin(dim=1).tolist())) == 6, "distinct samples"

    ckpt = tmp_path / "swae.ckpt"
    trainer.save_checkpoint(ckpt)
    reloaded = load_method(ckpt)
    assert reloaded.pseudo_inputs.is_initialized
    torch.testing.assert_close(reloaded.pseudo_inputs.u, model.pseudo_inputs.u)


def test_too_many_pseudo_inputs_is_a_clear_error(tmp_path) -> None:
    model = build(num_pseudo_inputs=50)
    data = SyntheticImages(image_shape=SHAPE, num_samples=20, batch_size=4)
    with pytest.raises(ValueError, match="num_pseudo_inputs <= 18"):
        tiny_trainer(tmp_path).fit(model, datamodule=data)


def test_sampling_and_the_marginal_prior() -> None:
    model = build().eval()
    samples = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (7, *SHAPE)
    with torch.no_grad():
        log_p = model.prior.log_prob(torch.randn(9, 2))
    assert log_p.shape == (9,) and torch.isfinite(log_p).all()


def test_denoising_error_is_the_clean_reconstruction_error_without_noise() -> None:
    model = build().eval()
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        clean = sum_squared_error(x, model.reconstruct(x))
        torch.testing.assert_close(denoising_error(model.reconstruct, x, noise_std=0.0), clean)
        noisy = denoising_error(model.reconstruct, x, generator=torch.Generator().manual_seed(0))
    assert noisy.shape == (4,) and not torch.equal(noisy, clean)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"beta": 1.5}, "beta"), ({"alpha": -1.0}, "alpha"), ({"nearest": "l1"}, "nearest"),
     ({"num_pseudo_inputs": 0}, "num_pseudo_inputs")],
)
def test_bad_hyperparameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build(**kwargs)
