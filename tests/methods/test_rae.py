"""RAE-L2 and RAE-GP: each term against a direct computation on tiny nets."""

import pytest
import torch
from torch import nn

from genae_lightning.backbones import MLPBackbone
from genae_lightning.functional import sum_squared_error
from genae_lightning.methods import RAE

SHAPE = (1, 3, 3)


def build(regularizer: str, **kw) -> RAE:
    torch.manual_seed(0)
    return RAE(image_shape=SHAPE, latent_dim=2, regularizer=regularizer, beta=0.3, lam=0.7,
               backbone=MLPBackbone(hidden=[16]), **kw)


def test_rae_l2_terms_and_total() -> None:
    model = build("l2")
    x = torch.rand(5, *SHAPE)
    out = model.loss(x)
    z = model.encode(x)
    rec = sum_squared_error(x, model.decode(z)).mean()
    emb = 0.5 * z.pow(2).sum(1).mean()
    l2 = sum(p.detach().pow(2).sum() for p in model.decoder.parameters())
    assert set(out.terms) == {"rec", "emb", "l2"}
    torch.testing.assert_close(out.terms["rec"], rec)
    torch.testing.assert_close(out.terms["emb"], emb)
    torch.testing.assert_close(out.terms["l2"], l2)
    torch.testing.assert_close(out.total, rec + 0.3 * emb + 0.7 * l2)
    assert not model.loss_needs_grad


def exact_decoder_jacobian_sq_norm(decoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    return torch.stack([
        torch.autograd.functional.jacobian(lambda zi: decoder(zi[None])[0], zi).pow(2).sum()
        for zi in z
    ])


@pytest.mark.parametrize("jvp", ["forward", "finite_difference", "reverse"])
def test_rae_gp_estimates_the_decoder_jacobian(jvp) -> None:
    model = build("gp", jvp=jvp, fd_eps=1e-3)
    x = torch.rand(4, *SHAPE)
    z = model.encode(x).detach()
    exact = exact_decoder_jacobian_sq_norm(model.decoder, z).mean()
    out = model.loss(x.repeat(3000, 1, 1, 1))
    assert set(out.terms) == {"rec", "emb", "gp"}
    assert out.terms["gp"].item() == pytest.approx(exact.item(), rel=0.06)
    expected = out.terms["rec"] + 0.3 * out.terms["emb"] + 0.7 * out.terms["gp"]
    torch.testing.assert_close(out.total, expected)
    assert model.loss_needs_grad == (jvp != "finite_difference")  # forward AD: not in inference
    out.terms["gp"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_rae_bad_hyperparameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="regularizer must be"):
        RAE(image_shape=SHAPE, regularizer="sn", backbone=MLPBackbone(hidden=[4]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta and lam"):
        RAE(image_shape=SHAPE, lam=-1.0, backbone=MLPBackbone(hidden=[4]))
    with pytest.raises(ValueError, match="eps must be > 0"):
        RAE(image_shape=SHAPE, regularizer="gp", fd_eps=0.0, backbone=MLPBackbone(hidden=[4]))
