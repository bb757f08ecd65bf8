"""AE+L2, AE+SN and CAE: each regulariser against a direct computation on tiny nets."""

import pytest
import torch
from torch import nn

from genae_lightning.backbones import ConvBackbone, MLPBackbone
from genae_lightning.functional import sum_squared_error
from genae_lightning.methods import AEL2, AESN, CAE

SHAPE = (1, 4, 4)


def test_ae_l2_penalises_exactly_the_decoder_parameters() -> None:
    torch.manual_seed(0)
    model = AEL2(image_shape=SHAPE, latent_dim=3, l2_weight=0.5, backbone=MLPBackbone(hidden=[8]))
    x = torch.rand(5, *SHAPE)
    out = model.loss(x)
    expected_l2 = sum(p.detach().pow(2).sum() for p in model.decoder.parameters())
    rec = sum_squared_error(x, model.reconstruct(x)).mean()
    torch.testing.assert_close(out.terms["l2"], expected_l2)
    torch.testing.assert_close(out.total, rec + 0.5 * expected_l2)
    model.zero_grad()
    (out.total - out.terms["rec"]).backward()  # the penalty alone
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    with pytest.raises(ValueError, match="l2_weight"):
        AEL2(image_shape=SHAPE, l2_weight=-1.0, backbone=MLPBackbone(hidden=[8]))


def _matrix(layer: nn.Module) -> torch.Tensor:
    """The weight as torch's spectral norm reshapes it (output dimension first)."""
    w = layer.weight
    return (w.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else w).flatten(1)


def test_ae_sn_normalises_every_decoder_layer_to_spectral_norm_one() -> None:
    torch.manual_seed(0)
    model = AESN(image_shape=(1, 8, 8), latent_dim=4, n_power_iterations=1,
                 backbone=ConvBackbone(preset="mnist", width=0.125))
    layers = [m for m in model.decoder.modules() if isinstance(m, (nn.Linear, nn.Conv2d,
                                                                    nn.ConvTranspose2d))]
    assert len(layers) == 6 and any(isinstance(m, nn.ConvTranspose2d) for m in layers)
    assert all(hasattr(m, "parametrizations") for m in layers)
    assert not any(hasattr(m, "parametrizations") for m in model.encoder.modules())
    model.train()
    for _ in range(30):  # power iterations run in training-mode forward passes
        model.decode(torch.randn(4, 4))
    model.eval()
    for layer in layers:
        sigma = torch.linalg.matrix_norm(_matrix(layer).detach(), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3), layer
    unconstrained = layers[0].parametrizations.weight.original
    assert torch.linalg.matrix_norm(unconstrained.detach(), ord=2).item() != pytest.approx(1.0)
    assert set(model.loss(torch.rand(4, 1, 8, 8)).terms) == {"rec"}


def exact_encoder_jacobian_sq_norm(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||J_h(x_i)||_F^2 per example, from the full (d, C, H, W) Jacobian."""
    return torch.stack([
        torch.autograd.functional.jacobian(lambda xi: encoder(xi[None])[0], xi).pow(2).sum()
        for xi in x
    ])


@pytest.mark.parametrize("jvp", ["forward", "finite_difference", "reverse"])
def test_cae_penalty_estimates_the_exact_encoder_jacobian(jvp) -> None:
    torch.manual_seed(0)
    model = CAE(image_shape=SHAPE, latent_dim=3, jac_weight=0.1, jvp=jvp, fd_eps=1e-3,
                backbone=MLPBackbone(hidden=[16]))
    x = torch.rand(4, *SHAPE)
    exact = exact_encoder_jacobian_sq_norm(model.encoder, x).mean()
    draws = 3000
    out = model.loss(x.repeat(draws, 1, 1, 1))
    # one probe per row, so the batch mean averages 12000 Hutchinson draws (rel. std < 1.5%)
    assert out.terms["jac"].item() == pytest.approx(exact.item(), rel=0.06)
    torch.testing.assert_close(out.total, out.terms["rec"] + 0.1 * out.terms["jac"])
    assert model.loss_needs_grad == (jvp != "finite_difference")  # forward AD: not in inference


def test_cae_penalty_trains_the_encoder_only_and_checks_arguments() -> None:
    torch.manual_seed(0)
    model = CAE(image_shape=SHAPE, latent_dim=3, backbone=MLPBackbone(hidden=[8]))
    out = model.loss(torch.rand(6, *SHAPE))
    out.terms["jac"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters()
               if p.dim() > 1)
    assert all(p.grad is None for p in model.decoder.parameters())
    with pytest.raises(ValueError, match="jvp must be"):
        CAE(image_shape=SHAPE, jvp="sideways", backbone=MLPBackbone(hidden=[8]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jac_weight"):
        CAE(image_shape=SHAPE, jac_weight=-0.1, backbone=MLPBackbone(hidden=[8]))
