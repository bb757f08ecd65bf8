"""InjFlow's objective against a hand computation on a tiny linear decoder, and gradient routes."""

import math

import pytest
import torch
from torch import nn

from genae_lightning.backbones import Backbone, MLPBackbone
from genae_lightning.functional import (
    injectivity_penalty,
    linear_frobenius_term,
    log_frobenius_term,
    penalty_coefficient,
)
from genae_lightning.methods import InjFlow

SHAPE = (1, 2, 3)  # D = 6
D, d = 6, 2


class LinearBackbone(Backbone):
    """Encoder x -> A x, decoder z -> W z (reshaped): J_g = W exactly."""

    def encoder(self, image_shape, out_features):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(image_shape), out_features, bias=False)
        )

    def decoder(self, latent_dim, image_shape):
        return nn.Sequential(
            nn.Linear(latent_dim, math.prod(image_shape), bias=False), nn.Unflatten(1, image_shape)
        )


def build(bound: str, jvp: str = "forward", **kw) -> InjFlow:
    torch.manual_seed(0)
    return InjFlow(
        image_shape=SHAPE,
        latent_dim=d,
        bound=bound,
        jvp=jvp,
        backbone=LinearBackbone(),
        prior_weight=0.1,
        **kw,
    )


@pytest.mark.parametrize("bound", ["log", "linear"])
def test_loss_matches_hand_computation(bound) -> None:
    model = build(bound, lam=2.0, eta=0.1)
    model.constraint.mu.fill_(3.0)
    model.constraint.mu_in.fill_(5.0)
    x = torch.rand(4, *SHAPE)
    torch.manual_seed(1)
    v = torch.randn(4, d)
    torch.manual_seed(1)
    out = model.loss(x)

    A = model.encoder[1].weight  # (d, D)
    W = model.decoder[0].weight  # (D, d)
    z = x.flatten(1) @ A.T
    x_hat = z @ W.T
    rec = ((x.flatten(1) - x_hat) ** 2).sum(1)
    jv2 = ((v @ W.T) ** 2).sum(1)
    v2 = (v**2).sum(1)
    clamped = torch.maximum(jv2, 0.01 * v2)
    jac = d / 2 * torch.log(clamped) if bound == "log" else clamped / (2 * 2.0)
    inj = torch.clamp(torch.sqrt(jv2 / v2) - 0.1, max=0) ** 2
    expected = (0.1 * (z**2).sum(1) + 3.0 * rec + jac + 5.0 * inj).mean()
    torch.testing.assert_close(out.total, expected)
    torch.testing.assert_close(out.terms["rec"], rec.mean())
    torch.testing.assert_close(out.terms["jac"], jac.mean())


def test_terms_closed_forms() -> None:
    sq, v2 = torch.tensor([4.0, 1e-6]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(
        log_frobenius_term(sq, v2, latent_dim=2, eta=0.1),
        torch.tensor([math.log(4.0), math.log(0.01)]),
    )
    torch.testing.assert_close(
        linear_frobenius_term(sq, v2, eta=0.1, lam=1.0), torch.tensor([2.0, 0.005])
    )
    # gain 2 >= eta: no penalty; gain 1e-3 < eta: (1e-3 - 0.1)^2
    torch.testing.assert_close(
        injectivity_penalty(sq, v2, eta=0.1), torch.tensor([0.0, (1e-3 - 0.1) ** 2])
    )
    assert penalty_coefficient(0, 1.3) == 1.0
    assert penalty_coefficient(100, 1.3) == pytest.approx(1 + 100**1.3 / 1000)


@pytest.mark.parametrize("jvp", ["forward", "finite_difference", "reverse"])
def test_jacobian_term_gradient_reaches_decoder_and_encoder(jvp) -> None:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 4, 4), latent_dim=3, jvp=jvp, backbone=MLPBackbone(hidden=[8]))
    x = torch.rand(5, 1, 4, 4)
    out = model.loss(x)
    grads = torch.autograd.grad(
        out.terms["jac"], list(model.decoder.parameters()), allow_unused=True, retain_graph=True
    )
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the Jacobian term trains g"
    enc_grads = torch.autograd.grad(
        out.terms["jac"], list(model.encoder.parameters()), allow_unused=True
    )
    # the Jacobian is evaluated at z = h(x), so the encoder gets a gradient through z too
    assert any(g is not None and g.abs().sum() > 0 for g in enc_grads)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bound": "square"}, "bound must be"),
        ({"jvp": "adjoint"}, "jvp must be"),
        ({"eta": 0.0}, "eta must be > 0"),
        ({"prior_weight": -1.0}, "prior_weight must be >= 0"),
        ({"fd_eps": -0.1}, "fd_eps must be > 0"),
    ],
)
def test_bad_hyperparameters_are_clear_errors(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        InjFlow(image_shape=(1, 4, 4), latent_dim=3, backbone=MLPBackbone(hidden=[8]), **kwargs)
