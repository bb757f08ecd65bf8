"""The three J v estimators against the exact Jacobian of a small decoder; BatchNorm updates."""

import copy

import pytest
import torch
from torch import nn

from genae_lightning.functional import (
    estimate_jacobian_sq_norm,
    frozen_batchnorm_stats,
    jvp_finite_difference,
    jvp_forward,
    jvp_needs_grad,
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


@pytest.mark.parametrize("mode", ["forward", "finite_difference", "reverse"])
def test_jvp_needs_grad_says_which_modes_fail_under_inference_mode(mode) -> None:
    fn = small_decoder().float().eval()
    z = torch.randn(4, 3)
    with torch.inference_mode():
        if jvp_needs_grad(mode):
            with pytest.raises(RuntimeError):
                estimate_jacobian_sq_norm(fn, z, mode)
        else:
            assert (estimate_jacobian_sq_norm(fn, z, mode).sq_norm > 0).all()
        with torch.inference_mode(False), torch.enable_grad():  # what validation then does
            assert (estimate_jacobian_sq_norm(fn, z.clone(), mode).sq_norm > 0).all()
    assert [jvp_needs_grad(m) for m in ("forward", "finite_difference", "reverse")] == [
        True, False, True]
    with pytest.raises(ValueError, match="jvp must be"):
        jvp_needs_grad("sideways")


def test_forward_mode_refuses_inference_mode_instead_of_returning_zeros() -> None:
    fn = small_decoder().eval()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="J v = 0 under torch.inference"):
        z = torch.randn(2, 3, dtype=torch.double)
        jvp_forward(fn, z, torch.randn_like(z))


@pytest.mark.parametrize("mode", ["forward", "finite_difference", "reverse"])
def test_every_mode_updates_batchnorm_statistics_once(mode) -> None:
    fn = small_decoder(batch_norm=True).float().train()
    reference = copy.deepcopy(fn)
    z = torch.randn(6, 3)
    reference(z)  # one plain training-mode pass
    est = estimate_jacobian_sq_norm(fn, z, mode)
    bn, ref_bn = fn[1], reference[1]
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
    torch.testing.assert_close(bn.running_var, ref_bn.running_var)
    est.sq_norm.sum().backward()  # the frozen pass keeps the graph intact
    assert fn[0].weight.grad.abs().sum() > 0


def test_finite_difference_quotient_is_of_the_training_mode_function() -> None:
    fn = small_decoder(batch_norm=True).train()
    plain = copy.deepcopy(fn)
    z, v = torch.randn(6, 3, dtype=torch.double), torch.randn(6, 3, dtype=torch.double)
    out, jv = jvp_finite_difference(fn, z, v, eps=0.01)
    expected = (plain(z + 0.01 * v) - plain(z)) / 0.01  # batch statistics in both passes
    torch.testing.assert_close(out, plain(z))
    torch.testing.assert_close(jv, expected, rtol=0, atol=0)
    assert int(fn[1].num_batches_tracked) == 1 and int(plain[1].num_batches_tracked) == 3


def test_frozen_batchnorm_stats_restores_and_leaves_eval_layers_alone() -> None:
    train_bn, eval_bn = nn.BatchNorm1d(2, momentum=None), nn.BatchNorm1d(2).eval()
    eval_bn.running_mean.fill_(5.0)
    x = torch.randn(4, 2)
    with pytest.raises(KeyError), frozen_batchnorm_stats(train_bn, eval_bn):
        torch.testing.assert_close(train_bn(x), nn.functional.batch_norm(x, None, None,
                                                                         training=True))
        torch.testing.assert_close(eval_bn(x), (x - 5.0) / (1 + eval_bn.eps) ** 0.5)
        raise KeyError("the block fails")
    assert train_bn.track_running_stats and eval_bn.track_running_stats  # restored
    assert int(train_bn.num_batches_tracked) == 0 and train_bn.running_mean.abs().sum() == 0
    train_bn(x)  # tracking again: cumulative average (momentum None) of one batch
    torch.testing.assert_close(train_bn.running_mean, x.mean(dim=0))


def test_a_precomputed_base_point_gives_the_same_quotient_with_one_pass_fewer() -> None:
    fn = small_decoder().float()
    calls = []
    fn.register_forward_hook(lambda *_: calls.append(1))
    z, v = torch.randn(4, 3), torch.randn(4, 3)
    out, jv = jvp_finite_difference(fn, z, v, eps=0.01)
    assert len(calls) == 2
    base_out, base_jv = jvp_finite_difference(fn, z, v, eps=0.01, base=out)
    assert len(calls) == 3 and base_out is out and torch.equal(base_jv, jv)
    torch.manual_seed(3)
    est = estimate_jacobian_sq_norm(fn, z, "finite_difference")
    torch.manual_seed(3)
    from_base = estimate_jacobian_sq_norm(fn, z, "finite_difference", base=est.output)
    assert torch.equal(from_base.sq_norm, est.sq_norm)
    assert torch.equal(from_base.v_sq_norm, est.v_sq_norm)
    with pytest.raises(ValueError, match="serves mode='finite_difference' only"):
        estimate_jacobian_sq_norm(fn, z, "forward", base=est.output)
