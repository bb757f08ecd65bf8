"""Relaxed injective probability flow (InjFlow and InjFlow-ln)."""

import math
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import (
    estimate_jacobian_sq_norm,
    injectivity_penalty,
    linear_frobenius_term,
    log_frobenius_term,
    sum_squared_error,
)
from genae_lightning.functional.jacobian import JacobianEstimate, JvpMode, jvp_needs_grad
from genae_lightning.methods.base import GenerativeAutoencoder, LossOutput
from genae_lightning.methods.batch_statistics import BatchStatistics
from genae_lightning.methods.constraints import DualAscentMultiplier

Constraint = Literal["penalty", "augmented_lagrangian"]


class InjFlow(GenerativeAutoencoder):
    """Injective flow trained by the penalty method, objectives (9) and (10) of the paper.

    Per example, with z = h(x) and v ~ N(0, I_d)::

        w ||z||^2 + mu ||x - g(z)||^2 + J(||J_g(z) v||^2) + mu_in [||J_g(z) v|| / ||v|| - eta]_-^2

    where J(s) = (d/2) ln max(s, eta^2 ||v||^2) for ``bound="log"`` (InjFlow-ln, eq. 9) and
    J(s) = max(s, eta^2 ||v||^2) / (2 lambda) for ``bound="linear"`` (InjFlow, eq. 10). The
    penalties mu and mu_in start at 1 and are grown every step by the ``PenaltySchedule`` callback.

    With ``constraint="augmented_lagrangian"`` the batch means of the two penalised quantities
    also get Lagrange multipliers, for E||x - g(z)||^2 <= kappa and E[inj] <= 0 (inj being the
    eta-hinge above); the loss adds lambda (E||x - g(z)||^2 - kappa) + lambda_in E[inj], and after
    each training step lambda and lambda_in take a projected dual-ascent step on a moving average
    of their constraint (:class:`~genae_lightning.methods.constraints.DualAscentMultiplier`,
    buffers, so checkpoints hold them). The quadratic penalties stay, with mu = mu_in = 1 fixed:
    the multipliers take over the job of the growing penalty, so ``PenaltySchedule`` is refused.

    Args:
        image_shape: (C, H, W) of the data; linked from the DataModule by the CLI.
        latent_dim: Latent dimension d (the paper: 32 for MNIST, 128 for CIFAR-10/CelebA).
        bound: ``"log"`` for objective (9) (InjFlow-ln), ``"linear"`` for objective (10).
        prior_weight: w = 1 / (2 sigma^2) of the latent prior N(0, sigma^2 I); the paper searches
            {0, 1e-4, 1e-3, 1e-2, 1e-1, 1}.
        eta: Singular-value threshold of the injectivity constraint (the paper: 0.1).
        lam: lambda of the linear bound (the paper fixes 1).
        jvp: How J_g(z) v is computed: ``"forward"`` (forward-mode AD, one decoder pass),
            ``"finite_difference"`` (eq. 8), or ``"reverse"`` (||J^T u||^2, footnote 2).
        fd_eps: Step of the finite-difference estimator (the paper: 0.01).
        constraint: ``"penalty"`` (the paper) or ``"augmented_lagrangian"`` (multipliers too).
        kappa: Tolerance of the reconstruction constraint E||x - g(h(x))||^2 <= kappa, in the
            units of ``train/rec`` (sum over pixels); augmented Lagrangian only.
        dual_lr: Dual step size of lambda, per unit of E||x - g(h(x))||^2 - kappa per step.
        dual_lr_in: Dual step size of lambda_in, per unit of the injectivity hinge per step.
        ema_decay: Decay of the moving averages that drive the dual steps.
        jac_fraction: Fraction of the batch on which the Jacobian and injectivity terms are
            estimated: ceil(jac_fraction * B) rows drawn uniformly without replacement from the
            step's random stream; their mean is unbiased for the batch mean. The reconstruction
            and prior terms stay on the full batch. Below 1 the decoder runs once on the full
            batch (reconstruction) and once on the sub-batch with BatchNorm frozen at the full
            batch's statistics (:class:`~genae_lightning.methods.batch_statistics.
            BatchStatistics`); with ``jvp="finite_difference"`` the sub-batch pass is only
            g(z + eps v), the base point g(z) being the full pass's. 1 (default) is the single
            full-batch pass of the paper.
        backbone: Encoder/decoder factory; ``ConvBackbone()`` by default.
        optimizer: Optimizer factory; Adam(lr=1e-3) by default.

    Reference:
        Kumar, Poole & Murphy, "Regularized Autoencoders via Relaxed Injective Probability Flow",
        AISTATS 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        bound: Literal["log", "linear"] = "log",
        prior_weight: float = 0.01,
        eta: float = 0.1,
        lam: float = 1.0,
        jvp: JvpMode = "forward",
        fd_eps: float = 0.01,
        constraint: Constraint = "penalty",
        kappa: float = 0.0,
        dual_lr: float = 1e-3,
        dual_lr_in: float = 1.0,
        ema_decay: float = 0.99,
        jac_fraction: float = 1.0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
    ) -> None:
        if bound not in ("log", "linear"):
            raise ValueError(f"bound must be 'log' (objective 9) or 'linear' (10), got {bound!r}")
        if jvp not in ("forward", "finite_difference", "reverse"):
            raise ValueError(
                f"jvp must be 'forward', 'finite_difference' or 'reverse', got {jvp!r}"
            )
        if constraint not in ("penalty", "augmented_lagrangian"):
            raise ValueError(
                f"constraint must be 'penalty' or 'augmented_lagrangian', got {constraint!r}"
            )
        for name, value in (("eta", eta), ("lam", lam), ("fd_eps", fd_eps)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name, value in (("prior_weight", prior_weight), ("kappa", kappa)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if isinstance(jac_fraction, bool) or not 0 < jac_fraction <= 1:
            raise ValueError(
                f"jac_fraction must be in (0, 1] (the fraction of the batch the Jacobian term is "
                f"estimated on; 1 = the full batch), got {jac_fraction!r}"
            )
        super().__init__(image_shape, latent_dim, backbone, optimizer)
        self.jac_fraction = float(jac_fraction)
        self.bound, self.prior_weight, self.eta, self.lam = bound, prior_weight, eta, lam
        self.jvp, self.fd_eps = jvp, fd_eps
        self.register_buffer("mu", torch.tensor(1.0))
        self.register_buffer("mu_in", torch.tensor(1.0))
        self.constraint = constraint
        if constraint == "augmented_lagrangian":
            self.rec_multiplier = DualAscentMultiplier(kappa, dual_lr, ema_decay)
            self.inj_multiplier = DualAscentMultiplier(0.0, dual_lr_in, ema_decay)
        self.save_hyperparameters()

    @property
    def loss_needs_grad(self) -> bool:
        """Whether the J v estimator needs autograd in validation (``jvp_needs_grad``)."""
        return jvp_needs_grad(self.jvp)

    def loss(self, x: Tensor) -> LossOutput:
        """Objective (9) or (10) with a one-sample Jacobian estimate, averaged over the batch."""
        z = self.encode(x)
        if self.jac_fraction == 1.0:
            est = estimate_jacobian_sq_norm(self.decoder, z, self.jvp, self.fd_eps)
            output = est.output
        else:
            output, est = self._subset_estimate(z)
        rec = sum_squared_error(x.float(), output).mean()
        prior = self.prior_weight * z.float().pow(2).sum(dim=1).mean()
        if self.bound == "log":
            jac = log_frobenius_term(est.sq_norm, est.v_sq_norm, self.latent_dim, self.eta)
        else:
            jac = linear_frobenius_term(est.sq_norm, est.v_sq_norm, self.eta, self.lam)
        inj = injectivity_penalty(est.sq_norm, est.v_sq_norm, self.eta).mean()
        total = prior + self.mu * rec + jac.mean() + self.mu_in * inj
        if self.constraint == "augmented_lagrangian":
            total = total + self.rec_multiplier.term(rec) + self.inj_multiplier.term(inj)
            self._constraint_values = (rec.detach(), inj.detach())
        return LossOutput(total, {"rec": rec, "prior": prior, "jac": jac.mean(), "inj": inj})

    def jac_rows(self, batch_size: int) -> Tensor:
        """The ceil(jac_fraction * B) rows of the Jacobian term, uniform without replacement."""
        count = max(1, math.ceil(self.jac_fraction * batch_size))
        return torch.randperm(batch_size, device=self.device)[:count]

    def _subset_estimate(self, z: Tensor) -> tuple[Tensor, JacobianEstimate]:
        """Full-batch g(z), and the Jacobian estimate on a random sub-batch (frozen BatchNorm)."""
        stats = BatchStatistics(self.decoder)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            with stats.capture():
                output = self.decoder(z)
            rows = self.jac_rows(z.shape[0])
            with stats.frozen():
                if self.jvp != "finite_difference":
                    est = estimate_jacobian_sq_norm(self.decoder, z[rows], self.jvp, self.fd_eps)
                    return output, est
                # eq. (8) with the base point g(z) already decoded: one sub-batch pass
                v = torch.randn(z[rows].shape, device=z.device, dtype=z.dtype)
                jv = (self.decoder(z[rows] + self.fd_eps * v) - output[rows]) / self.fd_eps
        est = JacobianEstimate(output[rows], jv.flatten(1).pow(2).sum(dim=1),
                               v.pow(2).sum(dim=1))
        return output, est

    def setup(self, stage: str) -> None:
        """Refuse ``PenaltySchedule`` with the augmented Lagrangian (mu and mu_in stay at 1)."""
        from genae_lightning.callbacks.penalty import PenaltySchedule  # callbacks import methods

        if self.constraint == "augmented_lagrangian" and any(
            isinstance(c, PenaltySchedule) for c in self.trainer.callbacks
        ):
            raise ValueError(
                "InjFlow(constraint='augmented_lagrangian') keeps the penalties mu = mu_in = 1 "
                "fixed and lets its Lagrange multipliers enforce the constraints; remove the "
                "PenaltySchedule callback, or use constraint='penalty'"
            )

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """The loss's step, then (augmented Lagrangian) one dual-ascent step on the multipliers.

        The batch values are averaged over processes first, so every rank's multipliers agree.
        """
        total = super().training_step(batch, batch_idx)
        if total is not None and self.constraint == "augmented_lagrangian":
            rec, inj = (self.trainer.strategy.reduce(v, reduce_op="mean")
                        for v in self._constraint_values)
            self.rec_multiplier.update(rec)
            self.inj_multiplier.update(inj)
            self.log("penalty/lambda", self.rec_multiplier.multiplier, on_step=True, on_epoch=False)
            self.log("penalty/lambda_in", self.inj_multiplier.multiplier, on_step=True,
                     on_epoch=False)
        return total
