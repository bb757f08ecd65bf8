"""The three J v estimators against the exact Jacobian of a small decoder."""

import pytest
import torch
from torch import nn

from genae_lightning.functional import (
    estimate_jacobian_sq_norm,
    jvp_finite_difference,
    jvp_forward,
    vjp_reverse,
)


def small_decoder(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(3, 16), nn.ELU(), nn.Linear(16, 10), nn.Sigmoid()]
    if batch_norm:
        layers.insert(1, nn.BatchNorm1d(16))
    return nn.Sequential(*layers).double()


def exact_jacobians(fn: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """(B, D, d): per-example Jacobians, computed one example at a time."""
    return torch.stack(
        [torch.autograd.functional.jacobian(lambda u: fn(u[None])[0], zi) for zi in z]
    )


def test_forward_mode_is_exact() -> None:
    fn = small_decoder().eval()
    z, v = torch.randn(5, 3, dtype=torch.double), torch.randn(5, 3, dtype=torch.double)
    out, jv = jvp_forward(fn, z, v)
    torch.testing.assert_close(out, fn(z))
    torch.testing.assert_close(jv, torch.einsum("bDd,bd->bD", exact_jacobians(fn, z), v))


def test_forward_mode_runs_with_batchnorm_in_train_mode() -> None:
    fn = small_decoder(batch_norm=True).train()
    z = torch.randn(6, 3, dtype=torch.double, requires_grad=True)
    v = torch.randn(6, 3, dtype=torch.double)
    out, jv = jvp_forward(fn, z, v)
    # reference: the batch function's Jacobian (BatchNorm couples the examples) applied to v
    full = torch.autograd.functional.jacobian(fn, z)  # (B, D, B, d)
    torch.testing.assert_close(jv, torch.einsum("bDcd,cd->bD", full, v))
    jv.pow(2).sum().backward()
    assert fn[0].weight.grad is not None and fn[0].weight.grad.abs().sum() > 0


def test_finite_difference_close_to_exact() -> None:
    fn = small_decoder().eval()
    z, v = torch.randn(5, 3, dtype=torch.double), torch.randn(5, 3, dtype=torch.double)
    _, jv_fd = jvp_finite_difference(fn, z, v, eps=1e-4)
    exact = torch.einsum("bDd,bd->bD", exact_jacobians(fn, z), v)
    torch.testing.assert_close(jv_fd, exact, atol=1e-4, rtol=1e-3)
    _, jv_paper = jvp_finite_difference(fn, z, v, eps=0.01)  # the paper's step: O(eps) error
    assert (jv_paper - exact).abs().max() < 0.05


def test_reverse_mode_is_exact_vjp() -> None:
    fn = small_decoder().eval()
    z, u = torch.randn(4, 3, dtype=torch.double), torch.randn(4, 10, dtype=torch.double)
    _, jtu = vjp_reverse(fn, z, u)
    torch.testing.assert_close(jtu, torch.einsum("bDd,bD->bd", exact_jacobians(fn, z), u))


@pytest.mark.parametrize("mode", ["forward", "finite_difference", "reverse"])
def test_frobenius_estimate_is_unbiased(mode) -> None:
    fn = small_decoder().float().eval()
    z = torch.randn(4, 3)
    exact = exact_jacobians(fn, z).pow(2).sum(dim=(1, 2))  # ||J||_F^2 per example
    gen = torch.Generator().manual_seed(0)
    draws = 4000
    zz = z.repeat(draws, 1)
    est = estimate_jacobian_sq_norm(fn, zz, mode, eps=1e-3, generator=gen)
    mean = est.sq_norm.view(draws, 4).mean(dim=0)
    stderr = est.sq_norm.view(draws, 4).std(dim=0) / draws**0.5
    assert ((mean - exact).abs() < 4 * stderr + 1e-3 * exact).all(), (mean, exact, stderr)
    expected_v = 3.0 if mode == "reverse" else None
    if expected_v is not None:
        assert torch.all(est.v_sq_norm == expected_v)
    else:
        assert abs(est.v_sq_norm.mean().item() - 3.0) < 0.1  # E||v||^2 = d


def test_estimate_is_float32_under_autocast() -> None:
    fn = small_decoder().float()
    z = torch.randn(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        est = estimate_jacobian_sq_norm(fn, z, "finite_difference")
    assert est.sq_norm.dtype == torch.float32 and est.output.dtype == torch.float32


def test_bad_mode_and_shapes_are_clear_errors() -> None:
    fn = small_decoder().float()
    with pytest.raises(ValueError, match="unknown jvp mode"):
        estimate_jacobian_sq_norm(fn, torch.randn(2, 3), "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch, latent_dim"):
        estimate_jacobian_sq_norm(fn, torch.randn(3), "forward")
    with pytest.raises(ValueError, match="eps must be > 0"):
        jvp_finite_difference(fn, torch.randn(2, 3), torch.randn(2, 3), eps=0.0)
