"""Journey (issue 26, 8c): a model built with your own modules is saved and loaded back.

Two models of your own: one with ``encoder=``/``decoder=`` modules you built, one with a
``Backbone`` subclass of yours. Each is saved, then loaded in a fresh process, which hands the
modules over again (``encoder=``, ``decoder=``) or trusts the backbone (``trusted=[...]``); the
reconstructions and GMM samples there equal the saved model's, bit for bit.
"""

import math

import safetensors.torch
import torch
from torch import nn
from torch.utils.data import DataLoader

from genae_lightning.backbones.base import Backbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.checkpoints.pretrained import save_pretrained
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import VAE, InjFlow
from tests.journeys.test_share_cli_model import NO_PICKLE, assert_identical, outputs, python

SHAPE, LATENT = (1, 8, 8), 3


class Encoder(nn.Module):
    """Your encoder: images (B, 1, 8, 8) to codes (B, features)."""

    def __init__(self, features: int, hidden: int = 24) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(SHAPE), hidden), nn.Tanh(),
                                 nn.Linear(hidden, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """Your decoder: codes (B, latent) to images (B, 1, 8, 8)."""

    def __init__(self, latent: int, hidden: int = 24) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(),
                                 nn.Linear(hidden, math.prod(SHAPE)), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *SHAPE)


class TwoLayers(Backbone):
    """Your backbone: builds an ``Encoder`` and a ``Decoder`` of ``hidden`` units."""

    def __init__(self, hidden: int = 24) -> None:
        self.hidden = hidden

    def encoder(self, image_shape, out_features: int) -> nn.Module:
        return Encoder(out_features, self.hidden)

    def decoder(self, latent_dim: int, image_shape) -> nn.Module:
        return Decoder(latent_dim, self.hidden)


# The fresh process: your modules are handed over again, your backbone is trusted.
LOAD = """
import sys, safetensors.torch
from genae_lightning import from_pretrained
from tests.journeys.test_share_custom_modules import LATENT, SHAPE, Decoder, Encoder, TwoLayers
from tests.journeys.test_share_cli_model import outputs
""" + NO_PICKLE + """
modules, backbone, out = sys.argv[1:]
model = from_pretrained(modules, encoder=Encoder(LATENT), decoder=Decoder(LATENT))
theirs = {f"modules/{k}": v for k, v in outputs(model, SHAPE).items()}
model = from_pretrained(backbone, trusted=[TwoLayers])
theirs.update({f"backbone/{k}": v for k, v in outputs(model, SHAPE).items()})
safetensors.torch.save_file(theirs, out)
"""


def with_priors(model):
    """``model`` with its post-hoc priors fitted (so it has a GMM to sample from)."""
    data = SyntheticImages(image_shape=SHAPE, num_samples=64, batch_size=16)
    data.setup("fit")
    FitLatentPrior(n_components=2).fit_module(model, DataLoader(data.train_dataset,
                                                                batch_size=16), progress=False)
    return model.eval()


def test_models_with_your_own_modules_load_back_in_a_fresh_process(tmp_path) -> None:
    torch.manual_seed(0)
    with_modules = with_priors(InjFlow(image_shape=SHAPE, latent_dim=LATENT,
                                       encoder=Encoder(LATENT), decoder=Decoder(LATENT)))
    with_backbone = with_priors(VAE(image_shape=SHAPE, latent_dim=LATENT,
                                    backbone=TwoLayers(16)))
    folders = [save_pretrained(model, tmp_path / name) for model, name in
               ((with_modules, "modules"), (with_backbone, "backbone"))]
    python(LOAD, *map(str, folders), str(tmp_path / "outputs.safetensors"))
    theirs = safetensors.torch.load_file(tmp_path / "outputs.safetensors")
    for model, name in ((with_modules, "modules"), (with_backbone, "backbone")):
        assert_identical({f"{name}/{k}": v for k, v in outputs(model, SHAPE).items()},
                         {k: v for k, v in theirs.items() if k.startswith(f"{name}/")})
