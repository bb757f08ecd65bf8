"""Exact ln det(J_g^T J_g), singular values of J_g, and the InjFlow bounds on it (paper eqs. 4, 5).

For small latents (d up to ~128) the full D x d decoder Jacobian is affordable: d forward-mode
J e_i products, batched into one decoder pass over B * d inputs. From it come the exact log-volume
term (1/2) ln det(J^T J) = sum_i ln s_i of the injective change of variables (eq. 2 and 3) and the
singular values s_i.

The paper's lower bounds on ln p(x), eqs. (4) and (5), are upper bounds on that term::

    (1/2) ln det(J^T J) <= ||J||_F^2 / (2 lambda) + (d/2) (ln lambda - 1)    (linear, eq. 4)
    (1/2) ln det(J^T J) <= (d/2) ln(||J||_F^2 / d)                            (log, eq. 5)

:func:`linear_bound` and :func:`log_bound` return these right-hand sides, so ``bound - exact >= 0``
is the slack each bound adds to -ln p(x). Given the exact ||J||_F^2 they are bounds; given the
one-sample estimate ||J v||^2 that training uses (v ~ N(0, I_d), E||J v||^2 = ||J||_F^2) the linear
one stays a bound in expectation, the log one does not (Jensen: E ln ||J v||^2 <= ln ||J||_F^2).

BatchNorm in train mode couples the examples of a batch, so per-example Jacobians need the decoder
in eval mode; :func:`jacobian_matrix` refuses a module with BatchNorm in train mode.
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from genae_lightning.functional.jacobian import jvp_forward


def _check_no_train_batchnorm(fn: Callable[[Tensor], Tensor]) -> None:
    if not isinstance(fn, nn.Module):
        return
    coupled = [name for name, m in fn.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if coupled:
        raise ValueError(
            f"the decoder has BatchNorm layers in train mode ({', '.join(coupled[:3]) or 'root'}), "
            "which mix the examples of a batch, so per-example Jacobians are undefined; call "
            ".eval() on it first (the Jacobian is then that of the running-statistics decoder)"
        )


def jacobian_matrix(
    fn: Callable[[Tensor], Tensor], z: Tensor, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Full Jacobian of ``fn`` at each latent, by forward-mode AD over the d basis directions.

    The B * d products J e_i run as one batched decoder pass (or ``ceil(B d / chunk_size)`` of
    them), in float32 (float64 latents stay float64) with autocast off and outside inference mode
    (where forward-mode AD would silently return zeros). Not differentiable: a diagnostic.

    Args:
        fn: Map from (B, d) latents to (B, ...) outputs, e.g. a decoder in eval mode.
        z: Latents, shape (B, d).
        chunk_size: Most rows per decoder pass (bounds memory); all B * d at once when None.

    Returns:
        ``(fn(z), J)`` with fn(z) of shape (B, ...) and J of shape (B, D, d), D = prod(...).

    Raises:
        ValueError: For ``z`` not of shape (B, d), a bad ``chunk_size``, or a module ``fn`` with
            BatchNorm in train mode.

    Example:
        >>> import torch
        >>> w = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
        >>> out, jac = jacobian_matrix(lambda z: z @ w.T, torch.zeros(1, 2))
        >>> torch.equal(jac[0], w)
        True
    """
    if z.dim() != 2:
        raise ValueError(f"latents must have shape (batch, latent_dim), got {tuple(z.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    _check_no_train_batchnorm(fn)
    batch, dim = z.shape
    with torch.inference_mode(False), torch.no_grad(), torch.autocast(z.device.type, enabled=False):
        z = z.detach().to(torch.promote_types(z.dtype, torch.float32)).clone()
        rows = z.repeat_interleave(dim, dim=0)  # (B d, d): row b d + i is z_b
        basis = torch.eye(dim, device=z.device, dtype=z.dtype).repeat(batch, 1)  # row b d + i: e_i
        step = chunk_size or batch * dim
        outs, jvs = zip(*(jvp_forward(fn, rows[i:i + step], basis[i:i + step])
                          for i in range(0, batch * dim, step)), strict=True)
        out, jv = torch.cat(outs), torch.cat(jvs)  # (B d, ...)
    output = out.reshape(batch, dim, *out.shape[1:])[:, 0]  # (B, ...)
    jac = jv.reshape(batch, dim, -1).transpose(1, 2)  # (B, D, d)
    return output, jac


def _check_jacobian(jac: Tensor) -> None:
    if jac.dim() != 3 or jac.shape[1] < jac.shape[2]:
        raise ValueError(
            f"expected Jacobians of shape (batch, D, d) with D >= d (an injective decoder), "
            f"got {tuple(jac.shape)}"
        )


def gram_logdet(jac: Tensor) -> Tensor:
    """The exact ln det(J^T J) per example, from ``slogdet`` of the d x d Gram matrix in float64.

    A singular Gram matrix (the decoder is not locally injective) gives -inf.

    Args:
        jac: Jacobians, shape (B, D, d).

    Returns:
        Shape (B,), float64.

    Example:
        >>> import torch
        >>> gram_logdet(torch.tensor([[[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]]))  # ln(4 * 9)
        tensor([3.5835], dtype=torch.float64)
    """
    _check_jacobian(jac)
    jac = jac.double()
    sign, logabsdet = torch.linalg.slogdet(jac.transpose(1, 2) @ jac)  # (B,)
    return torch.where(sign > 0, logabsdet, torch.full_like(logabsdet, -math.inf))


def singular_values(jac: Tensor) -> Tensor:
    """Singular values of each Jacobian, in descending order, float64.

    Args:
        jac: Jacobians, shape (B, D, d).

    Returns:
        Shape (B, d).

    Example:
        >>> import torch
        >>> singular_values(torch.tensor([[[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]])).round(decimals=6)
        tensor([[3., 2.]], dtype=torch.float64)
    """
    _check_jacobian(jac)
    return torch.linalg.svdvals(jac.double())


def _check_latent_dim(latent_dim: int) -> None:
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")


def linear_bound(fro_sq: Tensor, latent_dim: int, lam: float | Tensor = 1.0) -> Tensor:
    """||J||_F^2 / (2 lambda) + (d/2)(ln lambda - 1): eq. (4)'s upper bound on (1/2) ln det(J^T J).

    Tight when every squared singular value equals lambda. Linear in ``fro_sq``, so an unbiased
    estimate of ||J||_F^2 gives an unbiased estimate of the bound.

    Args:
        fro_sq: ||J||_F^2 (or an estimate of it, e.g. ||J v||^2), any shape.
        latent_dim: d.
        lam: lambda > 0 (the paper fixes 1); a tensor broadcasts against ``fro_sq``.

    Example:
        >>> import torch
        >>> linear_bound(torch.tensor([2.0]), latent_dim=2, lam=1.0)  # s_i^2 = 1: tight, 0
        tensor([0.])
    """
    _check_latent_dim(latent_dim)
    lam = torch.as_tensor(lam, dtype=fro_sq.dtype, device=fro_sq.device)
    if bool((lam <= 0).any()):
        raise ValueError(f"lambda must be > 0, got {lam}")
    return fro_sq / (2.0 * lam) + 0.5 * latent_dim * (torch.log(lam) - 1.0)


def log_bound(fro_sq: Tensor, latent_dim: int) -> Tensor:
    """(d/2) ln(||J||_F^2 / d): eq. (5)'s upper bound on (1/2) ln det(J^T J).

    The minimum of :func:`linear_bound` over lambda (at lambda = ||J||_F^2 / d); tight when all
    singular values are equal.

    Args:
        fro_sq: ||J||_F^2 (or an estimate of it), any shape.
        latent_dim: d.

    Example:
        >>> import torch
        >>> log_bound(torch.tensor([8.0]), latent_dim=2)  # s_i^2 = 4: tight, ln 4
        tensor([1.3863])
    """
    _check_latent_dim(latent_dim)
    return 0.5 * latent_dim * torch.log(fro_sq / latent_dim)
