"""VampPrior: its prior is a proper mixture of the posteriors at the pseudo-inputs."""

import functools
import math

import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import diag_gaussian_log_prob, gaussian_nll, reparameterize
from genae_lightning.methods import VampPrior
from tests.conftest import tiny_trainer

SHAPE = (1, 3, 3)


def build(latent_dim: int = 2, k: int = 5, **kw) -> VampPrior:
    torch.manual_seed(0)
    return VampPrior(image_shape=SHAPE, latent_dim=latent_dim, num_pseudo_inputs=k,
                     backbone=MLPBackbone(hidden=[16]), **kw)


def test_log_prob_matches_an_explicit_loop_over_pseudo_inputs() -> None:
    model = build().double()
    z = torch.randn(7, 2, dtype=torch.double)
    expected = []
    for zi in z:
        densities = []
        for u in model.pseudo_inputs.u:
            mean, logvar = model.encoder(u[None])[0].chunk(2)
            densities.append(math.exp(diag_gaussian_log_prob(zi, mean, logvar).item()))
        expected.append(math.log(sum(densities) / len(densities)))
    torch.testing.assert_close(model.prior.log_prob(z), torch.tensor(expected, dtype=torch.double))


def test_prior_density_integrates_to_one() -> None:
    model = build(latent_dim=1, k=4).double()
    grid = torch.linspace(-30, 30, 20001, dtype=torch.double)[:, None]
    mass = torch.trapezoid(model.prior.log_prob(grid).exp(), grid[:, 0])
    assert abs(mass.item() - 1.0) < 1e-6
    assert model.sample(6).shape == (6, *SHAPE)


def test_loss_is_reconstruction_plus_one_sample_kl_and_trains_the_pseudo_inputs() -> None:
    model = build(sigma=0.5)
    x = torch.rand(4, *SHAPE)
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    mean, logvar = model.posterior(x)
    z = reparameterize(mean, logvar)
    nll = gaussian_nll(x, model.decode(z), 0.5).mean()
    kl = (diag_gaussian_log_prob(z, mean, logvar) - model.prior.log_prob(z)).mean()
    torch.testing.assert_close(out.terms["nll"], nll)
    torch.testing.assert_close(out.terms["kl"], kl)
    torch.testing.assert_close(out.total, nll + kl)
    out.total.backward()
    assert model.pseudo_inputs.u.grad is not None and model.pseudo_inputs.u.grad.abs().sum() > 0


def test_pseudo_inputs_start_from_training_images(tmp_path) -> None:
    model = build(k=6, optimizer=functools.partial(torch.optim.SGD, lr=0.0))
    data = SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8)
    assert not model.pseudo_inputs.is_initialized
    tiny_trainer(tmp_path, max_steps=1).fit(model, datamodule=data)
    assert model.pseudo_inputs.is_initialized
    train = torch.stack([data.train_dataset[i][0] for i in range(len(data.train_dataset))])
    u = model.pseudo_inputs.u.detach()
    matches = (u.flatten(1)[:, None] - train.flatten(1)[None]).abs().amax(-1) < 1e-6  # (K, N)
    assert matches.any(dim=1).all() and matches.any(dim=0).sum() == 6
