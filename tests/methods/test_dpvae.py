"""dpVAE and the regularised VAEs: prior objects, which parameters each term trains, schedules."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import gaussian_kl_standard, mmd, reparameterize
from genae_lightning.methods import (
    VAE,
    BetaTCVAE,
    BetaVAEB,
    BetaVAEH,
    FactorVAE,
    InfoVAE,
    load_method,
)
from genae_lightning.priors import DecoupledPrior, StandardNormal
from tests.conftest import tiny_trainer

SHAPE = (1, 8, 8)


def decoupled(**kwargs) -> DecoupledPrior:
    return DecoupledPrior(flow_layers=2, flow_hidden=8, **kwargs)


def build(cls, **kwargs):
    torch.manual_seed(0)
    return cls(image_shape=SHAPE, latent_dim=3, backbone=MLPBackbone(hidden=[16]), **kwargs)


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def has_grad(module: torch.nn.Module) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in grads(module))


def test_the_prior_object_gets_the_methods_latent_dim() -> None:
    model = build(VAE, prior=decoupled())
    assert isinstance(model.prior, DecoupledPrior) and model.prior.dim == 3
    assert isinstance(build(VAE).prior, StandardNormal) and build(VAE).prior.dim == 3
    assert isinstance(build(BetaVAEH).prior, StandardNormal)
    assert isinstance(build(BetaVAEH, prior=decoupled()).prior, DecoupledPrior)
    assert build(VAE, prior=decoupled(dim=3)).prior.dim == 3  # a matching dim is fine
    with pytest.raises(ValueError, match="built with dim=5, but the method's latent_dim is 3"):
        build(VAE, prior=decoupled(dim=5))
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        VAE(image_shape=SHAPE, latent_dim=1, prior=decoupled(), backbone=MLPBackbone(hidden=[8]))
    with pytest.raises(TypeError, match="prior must be a genae_lightning.priors.Prior object"):
        build(VAE, prior="decoupled")


def test_kl_dispatches_on_the_prior_object() -> None:
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    z = reparameterize(mean, logvar)
    standard = build(VAE)
    torch.testing.assert_close(standard.kl(mean, logvar, z), gaussian_kl_standard(mean, logvar))
    flow = build(VAE, prior=decoupled())
    log_q = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(1)
    torch.testing.assert_close(flow.kl(mean, logvar, z), log_q - flow.prior.log_prob(z))


def test_hyperparameters_hold_the_priors_settings_not_the_module() -> None:
    model = build(VAE, prior=decoupled())
    assert model.hparams.prior == {"class_path": "genae_lightning.priors.decoupled.DecoupledPrior",
                                   "init_args": {"flow_layers": 2, "flow_hidden": 8}}
    assert build(VAE).hparams.prior is None


def test_decoupled_kl_is_unbiased_at_init_and_trains_the_flow() -> None:
    model = build(VAE, prior=DecoupledPrior())
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        mean, logvar = model.posterior(x)
        closed = gaussian_kl_standard(mean, logvar)  # the untrained flow is the identity
        m, lv = mean.repeat(20_000, 1), logvar.repeat(20_000, 1)
        est = model.kl(m, lv, reparameterize(m, lv)).view(20_000, 4).mean(0)
    torch.testing.assert_close(est, closed, atol=0.02, rtol=0.02)
    model.zero_grad()
    model.loss(x).total.backward()
    assert has_grad(model.prior) and has_grad(model.encoder) and has_grad(model.decoder)


def test_beta_vae_h_weights_the_kl() -> None:
    x = torch.rand(4, *SHAPE)
    a, b = build(BetaVAEH, beta=1.0), build(BetaVAEH, beta=5.0)
    torch.manual_seed(0)
    out_a = a.loss(x)
    torch.manual_seed(0)
    out_b = b.loss(x)
    torch.testing.assert_close(out_b.total - out_a.total, 4.0 * out_a.terms["kl"])


def test_beta_vae_b_anneals_the_capacity_linearly() -> None:
    model = build(BetaVAEB, capacity_start=1.0, capacity_max=11.0, capacity_steps=10)
    assert [model.capacity(s) for s in (0, 5, 10, 50)] == [1.0, 6.0, 11.0, 11.0]
    out = model.loss(torch.rand(4, *SHAPE))
    torch.testing.assert_close(out.total - out.terms["nll"],
                               model.gamma * (out.terms["kl"] - 1.0).abs())


@pytest.mark.parametrize("prior", ["standard", "decoupled"])
def test_beta_tcvae_terms_sum_to_the_kl_and_reach_the_prior(prior: str) -> None:
    model = build(BetaTCVAE, prior=decoupled() if prior == "decoupled" else None, dataset_size=100)
    out = model.loss(torch.rand(6, *SHAPE))
    t = out.terms
    torch.testing.assert_close(t["mi"] + t["tc"] + t["dim_kl"], t["kl"])
    torch.testing.assert_close(out.total - t["nll"], t["mi"] + 6.0 * t["tc"] + t["dim_kl"])
    if prior == "decoupled":
        out.total.backward()
        assert has_grad(model.prior)


def test_factor_vae_discriminator_gets_gradients_only_from_its_own_loss() -> None:
    model = build(FactorVAE, discriminator_hidden=[8], prior=decoupled())
    x = torch.rand(6, *SHAPE)
    out, z = model.loss_and_codes(x)
    out.total.backward()
    assert all(g is None for g in grads(model.discriminator))
    assert has_grad(model.encoder) and has_grad(model.prior)
    model.zero_grad(set_to_none=True)
    model.discriminator_objective(z).backward()
    assert has_grad(model.discriminator)
    assert all(g is None for g in grads(model.encoder) + grads(model.decoder) + grads(model.prior))


def test_factor_vae_step_updates_vae_and_discriminator(tmp_path) -> None:
    model = build(FactorVAE, discriminator_hidden=[8])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = SyntheticImages(image_shape=SHAPE, num_samples=16, batch_size=8)
    tiny_trainer(tmp_path, max_steps=1).fit(model, datamodule=data)  # one batch, two optimizers
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("discriminator.") for n in changed)
    assert any(n.startswith("encoder.") for n in changed)


def test_info_vae_mmd_trains_the_flow_through_prior_samples() -> None:
    model = build(InfoVAE, alpha=1.0, lam=10.0, prior=decoupled())
    out = model.loss(torch.rand(8, *SHAPE))
    torch.testing.assert_close(out.total - out.terms["nll"], 10.0 * out.terms["mmd"])
    out.total.backward()  # the KL has weight 0 here: the flow's gradient comes from the MMD
    assert has_grad(model.prior)
    z = torch.randn(16, 3)
    assert float(mmd(z, z, model.kernel, model.kernel_scales, unbiased=False)) == pytest.approx(
        0.0, abs=1e-6)


def test_decoupled_prior_survives_checkpoint_reload(tmp_path) -> None:
    model = build(BetaVAEH, prior=decoupled())
    data = SyntheticImages(image_shape=SHAPE, num_samples=16, batch_size=8)
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    reloaded = load_method(tmp_path / "m.ckpt")
    z = torch.randn(5, 3)
    torch.testing.assert_close(reloaded.prior.log_prob(z), model.prior.log_prob(z))
    assert isinstance(reloaded.prior, DecoupledPrior) and reloaded.prior.flow_layers == 2
    assert reloaded.hparams.beta == 4.0


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (VAE, {"sigma": 0.0}, "sigma"),
    (BetaVAEH, {"beta": -1.0}, "beta"),
    (BetaVAEB, {"capacity_steps": 0}, "capacity_steps"),
    (BetaTCVAE, {"estimator": "exact"}, "estimator"),
    (FactorVAE, {"discriminator_hidden": []}, "discriminator_hidden"),
    (InfoVAE, {"alpha": 2.0}, "alpha <= 1"),
    (InfoVAE, {"kernel": "laplace"}, "kernel"),
])
def test_bad_hyperparameters_are_clear_errors(cls, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build(cls, **kwargs)


def test_a_saved_prior_class_that_is_no_prior_is_refused() -> None:
    from genae_lightning.trust import UntrustedClassError, build

    with pytest.raises(UntrustedClassError, match="prior.class_path names 'os.system'"):
        build({"class_path": "os.system", "init_args": {}}, where="m.ckpt", key="prior",
              kinds=("prior",))
    with pytest.raises(UntrustedClassError, match="'genae_lightning.methods.Penalty'"):
        build({"class_path": "genae_lightning.methods.Penalty"}, where="m.ckpt", key="prior",
              kinds=("prior",))  # a genae class, but no prior
    rebuilt = build({"class_path": "genae_lightning.priors.decoupled.DecoupledPrior",
                     "init_args": {"flow_layers": 2}}, where="m.ckpt", key="prior",
                    kinds=("prior",))
    assert isinstance(rebuilt, DecoupledPrior) and rebuilt.flow_layers == 2
