"""bench/injflow_train_eval.py: the probe leaves the model alone; recalibrated eval = train."""

import importlib.util
from pathlib import Path

import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.latents import recalibrate_batchnorm
from genae_lightning.methods import InjFlow

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "injflow_train_eval.py"


def load_script():
    spec = importlib.util.spec_from_file_location("injflow_train_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recalibrated_running_statistics_are_the_batch_statistics() -> None:
    bench = load_script()
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=3,
                    backbone=MLPBackbone(hidden=[16], batch_norm=True))
    x = torch.rand(32, 1, 8, 8)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    train_error = bench.fixed_batch_error(model, x, train_mode=True)
    for k, v in model.state_dict().items():  # the probe leaves running statistics alone
        torch.testing.assert_close(v, buffers[k])
    stale = bench.fixed_batch_error(model, x, train_mode=False)  # untouched running statistics
    recalibrate_batchnorm(model, [x], num_batches=1)
    recalibrated = bench.fixed_batch_error(model, x, train_mode=False)
    # one batch, averaged: the running mean is exactly the batch mean; the running variance is
    # the unbiased batch variance (BatchNorm normalises by the biased one), so close, not equal
    assert abs(recalibrated - train_error) < 0.02 * train_error
    assert abs(stale - train_error) > 10 * abs(recalibrated - train_error)
