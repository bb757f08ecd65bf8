"""LPGA and VPGA: gradient routing of every term, the sphere radius, the KL, warm-up, backbone."""

import copy
import math

import pytest
import torch
from torch import nn

from genae_lightning.backbones import DCGANBackbone, MLPBackbone
from genae_lightning.functional import log_det_jacobian_estimate, sphere_perturbation
from genae_lightning.methods import LPGA, VPGA

SHAPE = (1, 8, 8)


def build(cls, **kwargs):
    torch.manual_seed(0)
    backbone = MLPBackbone(hidden=[16], batch_norm=kwargs.pop("batch_norm", False))
    return cls(image_shape=SHAPE, latent_dim=3, backbone=backbone, **kwargs)


def grads(term: torch.Tensor, module: nn.Module) -> list[torch.Tensor]:
    params = list(module.parameters())
    got = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(got, params, strict=True)]


def is_zero(gs: list[torch.Tensor]) -> bool:
    return all(torch.count_nonzero(g) == 0 for g in gs)


# term -> (updates the encoder phi, updates the decoder theta), as the paper assigns them
LPGA_ROUTES = {
    "rec": (True, True), "lr_n": (True, False), "lr_h": (True, False),
    "nll_enc": (True, False), "nll_dec": (False, True),
}
VPGA_ROUTES = {
    "rec": (True, True), "lr_n": (True, False), "lr_h": (True, False),
    "nll": (True, True), "kl": (True, False),
}


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(("cls", "routes"), [(LPGA, LPGA_ROUTES), (VPGA, VPGA_ROUTES)])
def test_every_term_trains_exactly_its_network(cls, routes, batch_norm) -> None:
    model = build(cls, batch_norm=batch_norm)
    out = model.loss(torch.rand(6, *SHAPE))
    assert set(out.terms) == set(routes)
    for name, (encoder, decoder) in routes.items():
        term = out.terms[name]
        assert is_zero(grads(term, model.encoder)) != encoder, f"{name}: encoder gradient"
        assert is_zero(grads(term, model.decoder)) != decoder, f"{name}: decoder gradient"


def test_lpga_total_is_loss_7() -> None:
    model = build(LPGA, alpha=0.3, beta=0.2, gamma=0.7)
    out = model.loss(torch.rand(5, *SHAPE))
    t = out.terms
    expected = t["rec"] + 0.3 * t["lr_n"] + 0.2 * t["lr_h"] + 0.7 * (t["nll_enc"] + t["nll_dec"])
    torch.testing.assert_close(out.total, expected)


def test_vpga_total_is_loss_11() -> None:
    model = build(VPGA, alpha=0.3, beta=0.2, gamma=0.7)
    out = model.loss(torch.rand(5, *SHAPE))
    t = out.terms
    torch.testing.assert_close(
        out.total, t["rec"] + 0.3 * t["lr_n"] + 0.2 * t["lr_h"] + 0.7 * (t["nll"] + t["kl"])
    )


def test_log_det_term_has_the_decoder_gradient_of_a_frozen_copy_of_the_encoder() -> None:
    """nll_dec's decoder gradient equals the one computed through a parameter-free encoder copy."""
    model = build(LPGA)
    x = torch.rand(6, *SHAPE)
    torch.manual_seed(5)
    got = grads(model.loss(x).terms["nll_dec"], model.decoder)

    frozen = copy.deepcopy(model.encoder).requires_grad_(False)
    torch.manual_seed(5)
    z = model.encode(x).detach()
    torch.randn_like(z)  # the z ~ N(0, I) that loss draws first
    delta = sphere_perturbation(z, model.radius)
    h = frozen(model.decoder(torch.cat([z, z + delta])))
    ref = log_det_jacobian_estimate(*h.chunk(2), model.radius).mean()
    for a, b in zip(got, grads(ref, model.decoder), strict=True):
        torch.testing.assert_close(a, b)


def test_vpga_likelihood_reaches_the_encoder_only_through_the_posterior_variance() -> None:
    model = build(VPGA)
    x = torch.rand(4, *SHAPE)
    mean, logvar = (t.detach().requires_grad_(True) for t in model.posterior(x))
    model.posterior = lambda _: (mean, logvar)  # type: ignore[method-assign]
    nll = model.loss(x).terms["nll"]
    g_mean, g_logvar = torch.autograd.grad(nll, [mean, logvar], allow_unused=True)
    assert g_mean is None or torch.count_nonzero(g_mean) == 0
    assert g_logvar is not None and torch.count_nonzero(g_logvar) > 0


def test_vpga_kl_is_the_closed_form() -> None:
    model = build(VPGA)
    x = torch.rand(7, *SHAPE)
    mean, logvar = model.posterior(x)
    closed = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
    torch.testing.assert_close(model.loss(x).terms["kl"], closed)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(closed, torch.distributions.kl_divergence(q, p).sum(1).mean())


def test_sphere_perturbation_has_radius_epsilon_and_no_preferred_direction() -> None:
    z = torch.zeros(20000, 4)
    delta = sphere_perturbation(z, 0.3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(delta.norm(dim=1), torch.full((20000,), 0.3))
    assert delta.mean(dim=0).abs().max() < 0.01
    with pytest.raises(ValueError, match="radius"):
        sphere_perturbation(z, 0.0)


def test_lpga_radius_scales_with_sqrt_latent_dim_by_default() -> None:
    assert build(LPGA, epsilon=0.02).radius == pytest.approx(0.02 * math.sqrt(3))
    assert build(LPGA, epsilon=0.02, scale_epsilon=False).radius == pytest.approx(0.02)


def test_log_det_estimate_is_exact_for_scaled_identity() -> None:
    z = torch.randn(3, 5)
    delta = sphere_perturbation(z, 0.1)
    est = log_det_jacobian_estimate(2.5 * z, 2.5 * (z + delta), 0.1)
    torch.testing.assert_close(est, torch.full((3,), 5 * math.log(2.5)))


@pytest.mark.parametrize("cls", [LPGA, VPGA])
def test_warmup_trains_reconstruction_only_and_validation_reports_everything(cls) -> None:
    model = build(cls, warmup_steps=5)
    x = torch.rand(4, *SHAPE)
    out = model.loss(x)
    assert set(out.terms) == {"rec"} and torch.equal(out.total, out.terms["rec"])
    model.eval()
    assert len(model.loss(x).terms) == 5


@pytest.mark.parametrize("cls", [LPGA, VPGA])
def test_samples_and_bad_hyperparameters(cls) -> None:
    model = build(cls)
    assert model.sample(5).shape == (5, *SHAPE)
    with pytest.raises(ValueError, match="alpha"):
        build(cls, alpha=-1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        build(cls, warmup_steps=-1)
    bad = {"epsilon": 0.0} if cls is LPGA else {"sigma": 0.0}
    with pytest.raises(ValueError, match=next(iter(bad))):
        build(cls, **bad)


@pytest.mark.parametrize(
    ("shape", "hidden", "convs"), [((1, 28, 28), 1024, 2), ((3, 32, 32), 0, 3), ((3, 64, 64), 0, 4)]
)
@pytest.mark.parametrize("batch_norm", [True, False])
def test_dcgan_backbone_shapes_and_optional_batchnorm(shape, hidden, convs, batch_norm) -> None:
    backbone = DCGANBackbone(channels=4, hidden=hidden, batch_norm=batch_norm)
    enc, dec = backbone.encoder(shape, 6), backbone.decoder(5, shape)
    assert enc(torch.rand(2, *shape)).shape == (2, 6)
    x = dec(torch.randn(2, 5))
    assert x.shape == (2, *shape) and 0 <= x.min() and x.max() <= 1
    assert sum(isinstance(m, nn.Conv2d) for m in enc.modules()) == convs
    modules = [*enc.modules(), *dec.modules()]
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules) == batch_norm
    with pytest.raises(ValueError, match="divisible"):
        DCGANBackbone(num_layers=3).decoder(5, (1, 28, 28))
