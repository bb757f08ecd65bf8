"""Pseudo-inputs: seeded initialisation from training data, nearest search, the mixture prior."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from genae_lightning.priors import PseudoInputMixture, PseudoInputs

SHAPE = (1, 4, 4)


def brute_force_nearest(x: torch.Tensor, u: torch.Tensor, metric: str) -> torch.Tensor:
    out = []
    for xi in x:
        best, best_k = None, -1
        for k, uk in enumerate(u):
            a, b = xi.flatten(), uk.flatten()
            if metric == "cosine":
                score = -(a @ b / (a.norm() * b.norm())).item()
            else:
                score = (a - b).pow(2).sum().item()
            if best is None or score < best:
                best, best_k = score, k
        out.append(best_k)
    return torch.tensor(out)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_matches_a_brute_force_loop(metric) -> None:
    torch.manual_seed(0)
    pseudo = PseudoInputs(13, SHAPE)
    x = torch.rand(9, *SHAPE)
    got = pseudo.nearest(x, metric)
    assert got.dtype == torch.long and got.shape == (9,)
    torch.testing.assert_close(got, brute_force_nearest(x, pseudo.u.detach(), metric))


def test_nearest_in_latent_space_uses_the_codes_and_leaves_batchnorm_alone() -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.BatchNorm1d(3))
    encoder.train()
    stats = encoder[2].running_mean.clone()
    pseudo = PseudoInputs(10, SHAPE)
    x = torch.rand(6, *SHAPE)
    got = pseudo.nearest(x, "latent", encoder=encoder, chunk_size=3)
    assert encoder.training, "the encoder's mode is restored"
    torch.testing.assert_close(encoder[2].running_mean, stats)
    encoder.eval()
    with torch.no_grad():
        expected = brute_force_nearest(encoder(x), encoder(pseudo.u), "l2")
    torch.testing.assert_close(got, expected)


def test_nearest_of_a_pseudo_input_is_itself_and_bad_arguments_fail() -> None:
    pseudo = PseudoInputs(5, SHAPE)
    torch.testing.assert_close(pseudo.nearest(pseudo.u.detach()), torch.arange(5))
    with pytest.raises(ValueError, match="needs the encoder"):
        pseudo.nearest(torch.rand(2, *SHAPE), "latent")
    with pytest.raises(ValueError, match="metric"):
        pseudo.nearest(torch.rand(2, *SHAPE), "l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        pseudo.nearest(torch.rand(2, 1, 5, 5))


def test_init_from_dataset_is_seeded_distinct_and_checks_the_size() -> None:
    images = torch.arange(20.0).view(20, 1, 1, 1).expand(20, *SHAPE).clone()
    dataset = TensorDataset(images, torch.zeros(20))
    a, b = PseudoInputs(8, SHAPE), PseudoInputs(8, SHAPE)
    assert not a.is_initialized
    a.init_from_dataset(dataset, seed=3)
    b.init_from_dataset(dataset, seed=3)
    assert a.is_initialized
    torch.testing.assert_close(a.u, b.u)
    picked = a.u.detach()[:, 0, 0, 0]
    assert len(set(picked.tolist())) == 8 and set(picked.tolist()) <= set(range(20))
    with pytest.raises(ValueError, match="num_pseudo_inputs <= 20"):
        PseudoInputs(21, SHAPE).init_from_dataset(dataset)
    with pytest.raises(ValueError, match="need 8 images"):
        a.init_from_data(torch.rand(7, *SHAPE))


def test_initialisation_survives_a_state_dict_round_trip() -> None:
    a = PseudoInputs(4, SHAPE)
    a.init_from_data(torch.full((4, *SHAPE), 0.5))
    b = PseudoInputs(4, SHAPE)
    b.load_state_dict(a.state_dict())
    assert b.is_initialized

    class NoData:
        datamodule = None
        train_dataloader = None

    assert b.init_from_trainer(NoData())  # already initialised: no data needed, values kept
    torch.testing.assert_close(b.u, a.u)
    assert not PseudoInputs(4, SHAPE).init_from_trainer(NoData(), required=False)
    with pytest.raises(RuntimeError, match="cannot initialise"):
        PseudoInputs(4, SHAPE).init_from_trainer(NoData())


def _mixture(k: int = 6, dim: int = 3) -> PseudoInputMixture:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2 * dim))
    return PseudoInputMixture(PseudoInputs(k, SHAPE), net, dim, chunk_size=4)


def test_mixture_log_prob_matches_torch_distributions() -> None:
    prior = _mixture()
    z = torch.randn(5, 3)
    with torch.no_grad():
        mean, logvar = prior.net(prior.pseudo_inputs.u).chunk(2, dim=1)
        dists = torch.distributions
        components = dists.Independent(dists.Normal(mean, (0.5 * logvar).exp()), 1)
        ref = dists.MixtureSameFamily(dists.Categorical(logits=torch.zeros(6)), components)
        ref = ref.log_prob(z)
        torch.testing.assert_close(prior.log_prob(z), ref)


def test_mixture_samples_come_from_the_components() -> None:
    prior = _mixture()
    with torch.no_grad():
        prior.net[1].bias[3:].fill_(-30.0)  # tiny variances: samples sit on the component means
        prior.net[1].weight[3:].zero_()
        means = prior.conditional()[0]
        z = prior.sample(50, generator=torch.Generator().manual_seed(0))
    assert z.shape == (50, 3)
    sq_dist = (z[:, None] - means[None]).pow(2).sum(dim=2).min(dim=1).values
    assert sq_dist.max() < 1e-8
    with pytest.raises(ValueError, match="expected latents"):
        prior.log_prob(torch.zeros(2, 4))
