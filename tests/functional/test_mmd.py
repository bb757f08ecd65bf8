"""MMD estimators and kernels against explicit loops and closed forms."""

import itertools
import math

import pytest
import torch

from genae_lightning.functional import kernel_matrix, mmd, wae_kernel_scales


def explicit_kernel(a: torch.Tensor, b: torch.Tensor, kernel: str, scales) -> float:
    d2 = (a - b).pow(2).sum().item()
    if kernel == "imq":
        return sum(s / (s + d2) for s in scales)
    return sum(math.exp(-d2 / s) for s in scales)


def explicit_mmd(x, y, kernel, scales, unbiased) -> float:
    n, m = len(x), len(y)
    pairs = (lambda k: itertools.permutations(range(k), 2)) if unbiased else (
        lambda k: itertools.product(range(k), repeat=2))
    norm_x = n * (n - 1) if unbiased else n * n
    norm_y = m * (m - 1) if unbiased else m * m
    xx = sum(explicit_kernel(x[i], x[j], kernel, scales) for i, j in pairs(n)) / norm_x
    yy = sum(explicit_kernel(y[i], y[j], kernel, scales) for i, j in pairs(m)) / norm_y
    xy = sum(explicit_kernel(a, b, kernel, scales) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_matches_explicit_double_sums(kernel, unbiased) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.double)
    y = torch.randn(4, 3, generator=gen, dtype=torch.double) + 0.5
    scales = (0.5, 2.0, 6.0)
    got = mmd(x, y, kernel, scales, unbiased=unbiased).item()
    assert got == pytest.approx(explicit_mmd(x, y, kernel, scales, unbiased), rel=1e-10)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_kernel_matrix_closed_form(kernel) -> None:
    x, y = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])  # ||x - y||^2 = 2
    expected = 4.0 / (4.0 + 2.0) if kernel == "imq" else float(torch.exp(torch.tensor(-0.5)))
    assert kernel_matrix(x, y, kernel, (4.0,)).item() == pytest.approx(expected)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_identical_sets_have_zero_mmd_and_separated_sets_positive(kernel) -> None:
    gen = torch.Generator().manual_seed(1)
    scales = wae_kernel_scales(4)
    x = torch.randn(64, 4, generator=gen)
    assert mmd(x, x.clone(), kernel, scales, unbiased=False).abs().item() < 1e-5
    same = mmd(x, torch.randn(64, 4, generator=gen), kernel, scales).item()
    far = mmd(x, torch.randn(64, 4, generator=gen) + 3.0, kernel, scales).item()
    assert abs(same) < 0.1 * far and far > 0.5


def test_unbiased_estimator_averages_to_zero_for_one_distribution() -> None:
    gen = torch.Generator().manual_seed(2)
    draws = torch.stack([
        mmd(torch.randn(8, 2, generator=gen), torch.randn(8, 2, generator=gen), "imq", (4.0,))
        for _ in range(400)
    ])
    assert draws.mean().abs() < 4 * draws.std() / 400**0.5


def test_mmd_is_differentiable_and_bad_arguments_fail() -> None:
    x = torch.randn(6, 3, requires_grad=True)
    mmd(x, torch.randn(6, 3)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown kernel"):
        mmd(x, x, "laplace")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scales"):
        mmd(x, x, scales=(0.0,))
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        mmd(x, torch.randn(6, 2))
    with pytest.raises(ValueError, match="at least 2"):
        mmd(x[:1], x)
    assert wae_kernel_scales(3, 2.0, (1.0,)) == (12.0,)
