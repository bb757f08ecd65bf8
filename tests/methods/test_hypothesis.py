"""Property tests: random small shapes and hyperparameters give finite losses and gradients."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genae_lightning.backbones import ConvBackbone, MLPBackbone
from genae_lightning.methods import AE, VAE, InjFlow

shapes = st.tuples(st.sampled_from([1, 3]), st.sampled_from([4, 8, 12]), st.sampled_from([4, 8]))


def check(model, shape, batch: int) -> None:
    x = torch.rand(batch, *shape)
    out = model.loss(x)
    assert torch.isfinite(out.total)
    out.total.backward()
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    assert model.sample(3).shape == (3, *shape)


@settings(max_examples=12, deadline=None)
@given(
    shape=shapes,
    latent=st.integers(1, 6),
    batch=st.integers(2, 5),
    bound=st.sampled_from(["log", "linear"]),
    jvp=st.sampled_from(["forward", "finite_difference", "reverse"]),
    prior_weight=st.sampled_from([0.0, 1e-4, 1e-2, 1.0]),
    eta=st.floats(1e-3, 1.0),
    conv=st.booleans(),
)
def test_injflow_properties(shape, latent, batch, bound, jvp, prior_weight, eta, conv) -> None:
    conv = conv and min(shape[1:]) >= 8  # smaller images are refused by ConvBackbone
    backbone = ConvBackbone(width=0.05) if conv else MLPBackbone(hidden=[8])
    model = InjFlow(
        image_shape=shape,
        latent_dim=latent,
        bound=bound,
        jvp=jvp,
        prior_weight=prior_weight,
        eta=eta,
        backbone=backbone,
    )
    check(model, shape, batch)


@settings(max_examples=8, deadline=None)
@given(
    shape=shapes,
    latent=st.integers(1, 6),
    batch=st.integers(2, 5),
    sigma=st.sampled_from([0.001, 0.01, 0.1, 1.0]),
)
def test_vae_and_ae_properties(shape, latent, batch, sigma) -> None:
    check(
        VAE(image_shape=shape, latent_dim=latent, sigma=sigma, backbone=MLPBackbone(hidden=[8])),
        shape,
        batch,
    )
    check(AE(image_shape=shape, latent_dim=latent, backbone=MLPBackbone(hidden=[8])), shape, batch)


@given(sigma=st.floats(max_value=0.0, allow_nan=False))
def test_vae_rejects_non_positive_sigma(sigma) -> None:
    import pytest

    with pytest.raises(ValueError, match="sigma"):
        VAE(image_shape=(1, 4, 4), latent_dim=2, sigma=sigma, backbone=MLPBackbone(hidden=[4]))
