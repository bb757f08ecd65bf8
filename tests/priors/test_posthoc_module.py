"""PosthocPriors: stores fitted priors by name, and rebuilds them from a state dict."""

import pytest
import torch
from torch import nn

from genae_lightning.backbones import MLPBackbone
from genae_lightning.methods import AE
from genae_lightning.priors import FullCovGaussian, GaussianMixture
from genae_lightning.priors.posthoc import PosthocPriors


def fitted() -> dict[str, nn.Module]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5])
    return {"gaussian": FullCovGaussian.fit(z), "gmm": GaussianMixture.fit(z, n_components=2)}


def test_state_dict_round_trip_into_an_empty_holder() -> None:
    priors = PosthocPriors(3)
    for name, prior in fitted().items():
        priors.set(name, prior, torch.device("cpu"))
    state = priors.state_dict()
    assert {k.split(".")[0] for k in state} == {"gaussian", "gmm"}  # the names are recorded

    fresh = PosthocPriors(3)
    fresh.load_state_dict(state)  # strict: the priors are rebuilt before the keys are matched
    z = torch.randn(5, 3)
    for name in ("gaussian", "gmm"):
        torch.testing.assert_close(fresh.get(name).log_prob(z), priors.get(name).log_prob(z))


def test_old_format_keys_load_into_a_fresh_model() -> None:
    """Checkpoints of the former plain ModuleDict hold ``posthoc_priors.<name>.*``: same keys."""
    torch.manual_seed(0)
    model = AE(image_shape=(1, 4, 4), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    state = model.state_dict()
    old = nn.ModuleDict(fitted())  # what the base module held before PosthocPriors
    state.update({f"posthoc_priors.{k}": v for k, v in old.state_dict().items()})
    fresh = AE(image_shape=(1, 4, 4), latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    fresh.load_state_dict(state, strict=True)
    assert sorted(fresh.posthoc_priors) == ["gaussian", "gmm"]
    torch.testing.assert_close(fresh.get_prior("gmm").means, old["gmm"].means)


def test_get_and_set_say_what_is_wrong() -> None:
    priors = PosthocPriors(3)
    with pytest.raises(RuntimeError, match="'gmm' prior has not been fitted"):
        priors.get("gmm")
    with pytest.raises(ValueError, match="unknown prior 'flow'"):
        priors.get("flow")
    with pytest.raises(ValueError, match="prior dimension 2 != latent_dim 3"):
        priors.set("gaussian", FullCovGaussian.fit(torch.randn(50, 2)), torch.device("cpu"))
