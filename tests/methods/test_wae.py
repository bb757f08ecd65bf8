"""WAE-MMD's penalty against the functional MMD, and WAE-GAN's gradient separation."""

import functools

import lightning as L
import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import mmd, wae_kernel_scales
from genae_lightning.methods import WAEGAN, WAEMMD
from tests.conftest import tiny_trainer

SHAPE = (1, 4, 4)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_wae_mmd_penalty_is_the_mmd_of_codes_and_prior_draws(kernel) -> None:
    torch.manual_seed(0)
    model = WAEMMD(image_shape=SHAPE, latent_dim=3, lam=2.0, kernel=kernel,
                   backbone=MLPBackbone(hidden=[8]))
    x = torch.rand(7, *SHAPE)
    torch.manual_seed(1)
    out = model.loss(x)
    torch.manual_seed(1)
    z_prior = model.prior.sample(7)
    expected = mmd(model.encode(x), z_prior, kernel, wae_kernel_scales(3))
    torch.testing.assert_close(out.terms["mmd"], expected)
    torch.testing.assert_close(out.total, out.terms["rec"] + 2.0 * expected)
    assert torch.isfinite(model.loss(x[:1]).total), "a batch of one falls back to the V-statistic"
    with pytest.raises(ValueError, match="kernel"):
        WAEMMD(image_shape=SHAPE, kernel="laplace", backbone=MLPBackbone(hidden=[8]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        WAEMMD(image_shape=SHAPE, lam=0.0, backbone=MLPBackbone(hidden=[8]))


def build_gan(**kw) -> WAEGAN:
    torch.manual_seed(0)
    return WAEGAN(image_shape=SHAPE, latent_dim=3, discriminator_hidden=(16, 16),
                  backbone=MLPBackbone(hidden=[8]), **kw)


def test_wae_gan_optimizers_split_the_parameters() -> None:
    model = build_gan()
    opt_ae, opt_d = model.configure_optimizers()
    ae = {id(p) for g in opt_ae.param_groups for p in g["params"]}
    d = {id(p) for g in opt_d.param_groups for p in g["params"]}
    assert d == {id(p) for p in model.discriminator.parameters()}
    assert not ae & d and ae | d == {id(p) for p in model.parameters()}


def test_wae_gan_losses_route_gradients_to_their_own_networks() -> None:
    model = build_gan()
    x = torch.rand(6, *SHAPE)
    z = model.encode(x)
    model.discriminator_objective(z).backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())
    assert all(p.grad is None for n, p in model.named_parameters()
               if not n.startswith("discriminator."))
    model.zero_grad(set_to_none=True)
    out = model.loss(x)
    assert set(out.terms) == {"rec", "adv"}
    out.terms["adv"].backward()  # the adversarial term reaches the encoder, not the decoder
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.decoder.parameters())


class CountBatches(L.Callback):
    def __init__(self) -> None:
        self.n = 0

    def on_train_batch_end(self, *args) -> None:
        self.n += 1


@pytest.mark.parametrize("frozen", ["discriminator", "autoencoder"])
def test_wae_gan_step_updates_each_network_with_its_own_optimizer(frozen, tmp_path) -> None:
    frozen_opt = functools.partial(torch.optim.SGD, lr=0.0)
    kw = {"discriminator_optimizer": frozen_opt} if frozen == "discriminator" else {
        "optimizer": frozen_opt}
    model = build_gan(**kw)
    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    e_before = [p.detach().clone() for p in model.encoder.parameters()]
    batches = CountBatches()
    trainer = tiny_trainer(tmp_path, max_steps=2, callbacks=[batches])
    trainer.fit(model, datamodule=SyntheticImages(image_shape=SHAPE, num_samples=32, batch_size=8))
    assert trainer.global_step == batches.n == 2, "global_step counts iterations, not D steps"
    def moved(before, params) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))

    d_moved = moved(d_before, model.discriminator.parameters())
    e_moved = moved(e_before, model.encoder.parameters())
    assert (d_moved, e_moved) == ((False, True) if frozen == "discriminator" else (True, False))
    assert {"train/loss", "train/rec", "train/adv", "train/disc"} <= set(trainer.logged_metrics)
