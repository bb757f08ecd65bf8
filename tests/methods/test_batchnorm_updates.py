"""How often one training step updates each network's BatchNorm running statistics.

Every J v mode updates them once per step (the perturbed finite-difference pass is frozen);
LPGA and VPGA update once per input distribution of the objective (docs/methods/pga.md).
"""

import contextlib

import pytest
import torch
from torch import nn

import genae_lightning.methods.pga as pga
from genae_lightning.backbones import ConvBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.functional import batchnorm_layers
from genae_lightning.methods import CAE, LPGA, RAE, VPGA, InjFlow
from tests.conftest import tiny_trainer

SHAPE = (1, 8, 8)


def updates_per_layer(module: nn.Module) -> set[int]:
    layers = batchnorm_layers(module)
    assert layers, f"{type(module).__name__} has no BatchNorm layer"
    return {int(m.num_batches_tracked) for m in layers}


def one_training_step(model, tmp_path) -> None:
    data = SyntheticImages(image_shape=SHAPE, num_samples=16, batch_size=8)
    tiny_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=data)


def build(cls, **kwargs):
    torch.manual_seed(0)
    return cls(image_shape=SHAPE, latent_dim=4,
               backbone=ConvBackbone(preset="mnist", width=0.125), **kwargs)


@pytest.mark.parametrize("mode", ["forward", "finite_difference", "reverse"])
@pytest.mark.parametrize("cls, kwargs", [(InjFlow, {}), (CAE, {}), (RAE, {"regularizer": "gp"})],
                         ids=["InjFlow", "CAE", "RAE-GP"])
def test_jvp_methods_update_running_statistics_once_per_step(cls, kwargs, mode, tmp_path) -> None:
    model = build(cls, jvp=mode, **kwargs)
    one_training_step(model, tmp_path)
    assert updates_per_layer(model.encoder) == {1}
    assert updates_per_layer(model.decoder) == {1}


@pytest.mark.parametrize("cls", [LPGA, VPGA])
def test_pga_updates_once_per_input_distribution(cls, tmp_path) -> None:
    model = build(cls)
    one_training_step(model, tmp_path)
    assert updates_per_layer(model.encoder) == {3}  # data, generated images, reconstructions
    assert updates_per_layer(model.decoder) == {2}  # codes f(x), prior samples


@pytest.mark.parametrize("cls", [LPGA, VPGA])
def test_pga_warm_up_updates_once(cls, tmp_path) -> None:
    model = build(cls, warmup_steps=5)  # L_r alone: one pass through each network
    one_training_step(model, tmp_path)
    assert updates_per_layer(model.encoder) == {1}
    assert updates_per_layer(model.decoder) == {1}


@pytest.mark.parametrize("cls", [LPGA, VPGA])
def test_pga_frozen_pair_pass_computes_the_same_loss(cls, monkeypatch) -> None:
    x = torch.rand(6, *SHAPE)
    frozen_model = build(cls).train()
    torch.manual_seed(1)
    frozen = frozen_model.loss(x)
    monkeypatch.setattr(pga, "frozen_batchnorm_stats", lambda *m: contextlib.nullcontext())
    plain_model = build(cls).train()
    torch.manual_seed(1)
    plain = plain_model.loss(x)
    assert frozen.terms.keys() == plain.terms.keys()
    for name in frozen.terms:
        torch.testing.assert_close(frozen.terms[name], plain.terms[name], rtol=0, atol=0)
    assert updates_per_layer(plain_model.decoder) == {3}  # without freezing: the pair counts too
