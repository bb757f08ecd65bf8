"""Latent traversals and interpolations (linear in z0 for decoupled priors)."""

import pytest
import torch

from genae_lightning.backbones import MLPBackbone
from genae_lightning.methods import VAE
from genae_lightning.plots import interpolate, latent_traversal, prior_std
from genae_lightning.priors import DecoupledPrior

SHAPE = (1, 8, 8)


def model(prior: str = "decoupled") -> VAE:
    torch.manual_seed(0)
    flow = DecoupledPrior(flow_layers=2, flow_hidden=8) if prior == "decoupled" else None
    m = VAE(image_shape=SHAPE, latent_dim=3, prior=flow, backbone=MLPBackbone(hidden=[16]))
    with torch.no_grad():
        for p in m.prior.parameters():
            p.normal_(0, 0.3)
    return m.eval()


def test_traversal_sweeps_one_dimension_per_row() -> None:
    m = model("standard")
    x = torch.rand(*SHAPE)
    images, codes = latent_traversal(m, x, dims=[0, 2], span=5.0, steps=5)
    assert images.shape == (10, *SHAPE) and codes.shape == (10, 3)
    z = m.encode(x[None])[0]
    rows = codes.view(2, 5, 3)
    torch.testing.assert_close(rows[0, :, 0] - z[0], torch.linspace(-5, 5, 5), atol=0.05, rtol=0)
    torch.testing.assert_close(rows[0, :, 1:], z[1:].expand(5, 2))
    torch.testing.assert_close(rows[1, 2], z)
    with pytest.raises(ValueError, match="dims"):
        latent_traversal(m, x, dims=[3])


def test_traversal_uses_given_std() -> None:
    m = model()
    _, codes = latent_traversal(m, torch.rand(*SHAPE), dims=[1], steps=3, span=1.0,
                                std=torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(codes[2, 1] - codes[0, 1], torch.tensor(4.0))
    assert prior_std(m.prior).shape == (3,)


def test_interpolation_is_linear_in_the_generation_space() -> None:
    m = model()
    a, b = torch.rand(*SHAPE), torch.rand(*SHAPE)
    images, path = interpolate(m, a, b, steps=6)
    assert images.shape == (6, *SHAPE)
    ends = m.encode(torch.stack([a, b]))
    torch.testing.assert_close(path[[0, -1]], ends, atol=1e-5, rtol=1e-5)
    z0 = m.prior.to_base(path)[0]
    steps = z0[1:] - z0[:-1]
    torch.testing.assert_close(steps, steps[:1].expand_as(steps), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(path[1:] - path[:-1], (path[1] - path[0]).expand(5, 3), atol=1e-4)
    _, linear = interpolate(model("standard"), a, b, steps=3)
    torch.testing.assert_close(linear[1], linear[[0, 2]].mean(0))


def test_genae_traverse_writes_grids(tmp_path) -> None:
    from genae_lightning.cli import main
    from genae_lightning.data import Digits
    from tests.conftest import tiny_trainer

    torch.manual_seed(0)
    m = VAE(image_shape=Digits.IMAGE_SHAPE, latent_dim=2,
            prior=DecoupledPrior(flow_layers=2, flow_hidden=8), backbone=MLPBackbone(hidden=[16]))
    trainer = tiny_trainer(tmp_path)
    trainer.fit(m, datamodule=Digits(batch_size=32))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    out = tmp_path / "grid.png"
    main(["traverse", "--ckpt_path", str(tmp_path / "m.ckpt"), "--data", "Digits",
          "--steps", "5", "--end_index", "3", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "grid_interpolation.png").is_file()
