"""Jacobian-vector estimators for ||J_g(z)||_F^2 (Hutchinson-style), InjFlow section 2.2.

Three ways to get an unbiased one-sample estimate of the squared Frobenius norm of the Jacobian of
``fn`` at ``z``, each also returning ``fn(z)`` so the caller pays for one decoder evaluation:

* ``"forward"``: forward-mode AD (dual tensors) gives J v in the same pass as g(z); exact J v.
  Works with BatchNorm in train mode (``torch.func.jvp`` does not).
* ``"finite_difference"``: eq. (8), J v ~ (g(z + eps v) - g(z)) / eps; two decoder passes, the
  perturbed one with BatchNorm running statistics frozen (one update per step, as in the others).
* ``"reverse"``: the paper's footnote 2, ||J^T u||^2 with u ~ N(0, I_D), by reverse-mode AD.

With v ~ N(0, I_d), E||J v||^2 = ||J||_F^2, and likewise E||J^T u||^2 = ||J||_F^2 with
u ~ N(0, I_D).

Which modes need autograd at validation and test time is decided in one place,
:func:`jvp_needs_grad`; the methods' ``loss_needs_grad`` asks it.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

from genae_lightning.functional.batchnorm import frozen_batchnorm_stats
from genae_lightning.functional.precision import at_least_float32

JvpMode = Literal["forward", "finite_difference", "reverse"]
JVP_MODES: tuple[str, ...] = ("forward", "finite_difference", "reverse")


def check_jvp_mode(mode: str, eps: float = 0.01) -> None:
    """Raise ``ValueError`` unless ``mode`` is a :data:`JvpMode` and ``eps`` > 0 (for constructors).

    Example:
        >>> check_jvp_mode("forward")
        >>> check_jvp_mode("sideways")
        Traceback (most recent call last):
        ...
        ValueError: jvp must be 'forward', 'finite_difference' or 'reverse', got 'sideways'
    """
    if mode not in JVP_MODES:
        raise ValueError(f"jvp must be 'forward', 'finite_difference' or 'reverse', got {mode!r}")
    if eps <= 0:
        raise ValueError(f"finite-difference eps must be > 0 (the paper uses 0.01), got {eps}")


def jvp_needs_grad(mode: str) -> bool:
    """Whether the J v estimator ``mode`` must run with autograd on (inference mode off).

    Lightning validates and tests under ``torch.inference_mode``. There:

    * ``"forward"``: forward-mode AD is switched off by inference mode, so J v would come out as
      zeros (``jvp_forward`` refuses to run there); it needs inference mode off.
    * ``"reverse"``: J^T u is a gradient (``torch.autograd.grad``); it needs grad mode on.
    * ``"finite_difference"``: two plain forward passes; it runs under inference mode.

    A method whose loss estimates J v returns this from ``loss_needs_grad``; the base class then
    computes validation and test losses under ``torch.inference_mode(False)`` and
    ``torch.enable_grad()`` (and detaches the logged terms).

    Examples:
        >>> [jvp_needs_grad(m) for m in ("forward", "finite_difference", "reverse")]
        [True, False, True]
    """
    check_jvp_mode(mode)
    return mode != "finite_difference"


@dataclass
class JacobianEstimate:
    """Output of :func:`estimate_jacobian_sq_norm`.

    Attributes:
        output: fn(z), shape (B, ...).
        sq_norm: One-sample estimate of ||J||_F^2 per example, shape (B,).
        v_sq_norm: ||v||^2 of the probe per example, shape (B,). For the reverse estimator the
            probe lives in output space, and this is the input dimension d = z[0].numel() instead
            (E||v||^2 for v ~ N(0, I_d)), so that ``sq_norm / v_sq_norm`` estimates the mean
            squared singular value in every mode.
    """

    output: Tensor
    sq_norm: Tensor
    v_sq_norm: Tensor


def _eager() -> AbstractContextManager:
    """``torch.compile``'d modules (``CompileModules``) run eagerly inside this block.

    torch.compile supports neither forward-mode AD nor a second backward through its graphs.
    """
    set_stance = getattr(torch.compiler, "set_stance", None)  # torch >= 2.6
    return set_stance("force_eager") if set_stance is not None else nullcontext()


def jvp_forward(fn: Callable[[Tensor], Tensor], z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Return (fn(z), J_fn(z) v) from one forward-mode pass; differentiable in fn's parameters.

    Example:
        >>> import torch
        >>> w = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
        >>> out, jv = jvp_forward(lambda z: z @ w.T, torch.ones(1, 2), torch.tensor([[1.0, 0.0]]))
        >>> jv
        tensor([[2., 0., 1.]])
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "forward-mode AD gives J v = 0 under torch.inference_mode (Lightning's validation and "
            "test); run it under torch.inference_mode(False), e.g. return "
            "functional.jacobian.jvp_needs_grad(mode) from the method's loss_needs_grad"
        )
    with fwAD.dual_level(), _eager():
        out_dual = fn(fwAD.make_dual(z, v))
        out, jv = fwAD.unpack_dual(out_dual)
    if jv is None:  # fn does not depend on z
        jv = torch.zeros_like(out)
    return out, jv


def jvp_finite_difference(
    fn: Callable[[Tensor], Tensor],
    z: Tensor,
    v: Tensor,
    eps: float = 0.01,
    base: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (fn(z), (fn(z + eps v) - fn(z)) / eps), eq. (8) of the InjFlow paper.

    ``base`` is fn(z) when the caller has it already (e.g. rows of a full-batch pass): it is then
    used as is, and fn runs once, on the perturbed point.

    When ``fn`` is an ``nn.Module``, the perturbed pass runs with its BatchNorm running statistics
    frozen (:func:`~genae_lightning.functional.batchnorm.frozen_batchnorm_stats`): it still
    normalises with the batch's statistics, so the quotient is of the training-mode function,
    but the statistics are updated once per call, by fn(z), as with the other estimators. A
    plain callable wrapping BatchNorm layers must be frozen by the caller.

    Example:
        >>> import torch
        >>> out, jv = jvp_finite_difference(lambda z: z**2, torch.ones(1, 1), torch.ones(1, 1))
        >>> round(jv.item(), 2)
        2.01
        >>> _, jv_from_base = jvp_finite_difference(lambda z: z**2, torch.ones(1, 1),
        ...                                         torch.ones(1, 1), base=torch.ones(1, 1))
        >>> torch.equal(jv, jv_from_base)
        True
    """
    if eps <= 0:
        raise ValueError(f"finite-difference eps must be > 0 (the paper uses 0.01), got {eps}")
    out = fn(z) if base is None else base
    frozen = frozen_batchnorm_stats(fn) if isinstance(fn, nn.Module) else nullcontext()
    with frozen:
        out_eps = fn(z + eps * v)
    return out, (out_eps - out) / eps


def vjp_reverse(
    fn: Callable[[Tensor], Tensor],
    z: Tensor,
    u: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (fn(z), J_fn(z)^T u) by reverse-mode AD, keeping the graph for a second backward.

    Args:
        fn: Map from (B, d) to (B, ...).
        z: Point of evaluation, shape (B, d).
        u: Cotangent of fn's output shape; drawn from N(0, I) when None.
        generator: Optional random generator for ``u``.

    Example:
        >>> import torch
        >>> w = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
        >>> out, jtu = vjp_reverse(lambda z: z @ w.T, torch.ones(1, 2), torch.ones(1, 3))
        >>> jtu
        tensor([[3., 4.]])
    """
    if not z.requires_grad:
        z = z.detach().requires_grad_(True)
    with _eager():  # its backward is differentiated again
        out = fn(z)
    if u is None:
        u = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
    (jtu,) = torch.autograd.grad(out, z, u, create_graph=True)
    return out, jtu


def estimate_jacobian_sq_norm(
    fn: Callable[[Tensor], Tensor],
    z: Tensor,
    mode: JvpMode = "forward",
    eps: float = 0.01,
    generator: torch.Generator | None = None,
    base: Tensor | None = None,
) -> JacobianEstimate:
    """One-sample estimate of ||J_fn(z)||_F^2 per example, computed in float32 (or float64).

    Autocast is switched off inside, so the estimate stays float32 under mixed precision; a
    float64 ``z`` (a model in float64) is kept in float64.

    Args:
        fn: Map from (B, d) latents to (B, ...) outputs, e.g. a decoder; or from (B, ...) inputs,
            e.g. an encoder of (B, C, H, W) images (the contractive autoencoder's penalty).
        z: Points of evaluation, shape (B, d) or (B, ...); the probe has the same shape.
        mode: ``"forward"``, ``"finite_difference"`` or ``"reverse"`` (see module docstring).
        eps: Step of the finite-difference estimator.
        generator: Optional random generator for the probe vectors.
        base: fn(z) when already computed, for ``mode="finite_difference"`` only (the other
            modes get fn(z) with the product): see :func:`jvp_finite_difference`.

    Returns:
        A :class:`JacobianEstimate` with fn(z), the estimate and ||v||^2.
    """
    if z.dim() < 2:
        raise ValueError(
            f"inputs must have a batch dimension, shape (batch, latent_dim) or (batch, C, H, W), "
            f"got {tuple(z.shape)}"
        )
    if base is not None and mode != "finite_difference":
        raise ValueError(f"a precomputed base point fn(z) serves mode='finite_difference' only; "
                         f"mode={mode!r} computes fn(z) with the product: leave base out")
    with torch.autocast(device_type=z.device.type, enabled=False):
        (z,) = at_least_float32(z)  # float64 (precision "64-true") stays float64
        if mode == "reverse":
            out, jtu = vjp_reverse(fn, z, generator=generator)
            sq_norm = jtu.flatten(1).pow(2).sum(dim=1)
            v_sq_norm = torch.full_like(sq_norm, float(z[0].numel()))
            return JacobianEstimate(out, sq_norm, v_sq_norm)
        v = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        if mode == "forward":
            out, jv = jvp_forward(fn, z, v)
        elif mode == "finite_difference":
            out, jv = jvp_finite_difference(fn, z, v, eps, base)
        else:
            raise ValueError(
                f"unknown jvp mode {mode!r}: expected 'forward', 'finite_difference' or 'reverse'"
            )
        sq_norm = jv.flatten(1).pow(2).sum(dim=1)
        return JacobianEstimate(out, sq_norm, v.flatten(1).pow(2).sum(dim=1))
