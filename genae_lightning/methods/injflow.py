"""Relaxed injective probability flow (InjFlow and InjFlow-ln)."""

import math
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.autoencoder.batch_statistics import BatchStatistics
from genae_lightning.autoencoder.constraints import Constraint, Penalty
from genae_lightning.autoencoder.injected import InjectedChoices
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
from genae_lightning.functional.precision import at_least_float32


class InjFlow(InjectedChoices, GenerativeAutoencoder):
    """Injective flow trained by the penalty method, objectives (9) and (10) of the paper.

    Per example, with z = h(x) and v ~ N(0, I_d)::

        w ||z||^2 + mu ||x - g(z)||^2 + J(||J_g(z) v||^2) + mu_in [||J_g(z) v|| / ||v|| - eta]_-^2

    where J(s) = (d/2) ln max(s, eta^2 ||v||^2) for ``bound="log"`` (InjFlow-ln, eq. 9) and
    J(s) = max(s, eta^2 ||v||^2) / (2 lambda) for ``bound="linear"`` (InjFlow, eq. 10). The
    penalties mu and mu_in belong to the ``constraint`` object
    (:mod:`~genae_lightning.autoencoder.constraints`): ``Penalty(nu, reference_steps)`` (the
    paper, the default) grows them as 1 + i^nu / 1000 before every optimizer step i;
    ``AugmentedLagrangian(kappa, ...)`` keeps them at 1 and adds Lagrange multipliers for
    E||x - g(z)||^2 <= kappa and E[inj] <= 0 (inj being the eta-hinge above), updated by dual
    ascent after every training step. Their state is in the state dict (``constraint.*``).

    Args:
        latent_dim: Latent dimension d (the paper: 32 for MNIST, 128 for CIFAR-10/CelebA).
        bound: ``"log"`` for objective (9) (InjFlow-ln), ``"linear"`` for objective (10).
        prior_weight: w = 1 / (2 sigma^2) of the latent prior N(0, sigma^2 I); the paper searches
            {0, 1e-4, 1e-3, 1e-2, 1e-1, 1}.
        eta: Singular-value threshold of the injectivity constraint (the paper: 0.1).
        lam: lambda of the linear bound (the paper fixes 1).
        jvp: How J_g(z) v is computed: ``"forward"`` (forward-mode AD, one decoder pass),
            ``"finite_difference"`` (eq. 8), or ``"reverse"`` (||J^T u||^2, footnote 2).
        fd_eps: Step of the finite-difference estimator (the paper: 0.01).
        constraint: ``Penalty(...)`` (the paper's growing penalty; ``Penalty()`` when None) or
            ``AugmentedLagrangian(...)`` (fixed penalty plus multipliers).
        jac_fraction: Fraction of the batch on which the Jacobian and injectivity terms are
            estimated: ceil(jac_fraction * B) rows drawn uniformly without replacement from the
            step's random stream; their mean is unbiased for the batch mean. The reconstruction
            and prior terms stay on the full batch. Below 1 the decoder runs once on the full
            batch (reconstruction) and once on the sub-batch with BatchNorm frozen at the full
            batch's statistics (:class:`~genae_lightning.autoencoder.batch_statistics.
            BatchStatistics`); with ``jvp="finite_difference"`` the sub-batch pass is only
            g(z + eps v), the base point g(z) being the full pass's, and the frozen statistics
            carry their gradient as in the full pass. 1 (default) is the single full-batch pass
            of the paper.

    Reference:
        Kumar, Poole & Murphy, "Regularized Autoencoders via Relaxed Injective Probability Flow",
        AISTATS 2020.
    """

    paper = ("Kumar, Poole & Murphy, *Regularized Autoencoders via Relaxed Injective Probability "
             "Flow*, AISTATS 2020")

    injected_choices = {"constraint": Constraint}

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
        constraint: Constraint | None = None,
        jac_fraction: float = 1.0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if bound not in ("log", "linear"):
            raise ValueError(f"bound must be 'log' (objective 9) or 'linear' (10), got {bound!r}")
        if jvp not in ("forward", "finite_difference", "reverse"):
            raise ValueError(
                f"jvp must be 'forward', 'finite_difference' or 'reverse', got {jvp!r}"
            )
        if constraint is not None and not isinstance(constraint, Constraint):
            raise TypeError(
                f"constraint must be a genae_lightning.autoencoder.constraints.Constraint object "
                f"(Penalty(nu=...) or AugmentedLagrangian(...)), got {constraint!r}"
            )
        for name, value in (("eta", eta), ("lam", lam), ("fd_eps", fd_eps)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if prior_weight < 0:
            raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
        if isinstance(jac_fraction, bool) or not 0 < jac_fraction <= 1:
            raise ValueError(
                f"jac_fraction must be in (0, 1] (the fraction of the batch the Jacobian term is "
                f"estimated on; 1 = the full batch), got {jac_fraction!r}"
            )
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.jac_fraction = float(jac_fraction)
        self.bound, self.prior_weight, self.eta, self.lam = bound, prior_weight, eta, lam
        self.jvp, self.fd_eps = jvp, fd_eps
        self.constraint = constraint if constraint is not None else Penalty()
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
        c = self.constraint
        total = c.augment(prior + c.mu * rec + jac.mean() + c.mu_in * inj, rec, inj)
        return LossOutput(total, {"rec": rec, "prior": prior, "jac": jac.mean(), "inj": inj})

    def jac_rows(self, batch_size: int) -> Tensor:
        """The ceil(jac_fraction * B) rows of the Jacobian term, uniform without replacement."""
        count = max(1, math.ceil(self.jac_fraction * batch_size))
        return torch.randperm(batch_size, device=self.device)[:count]

    def _subset_estimate(self, z: Tensor) -> tuple[Tensor, JacobianEstimate]:
        """Full-batch g(z), and the Jacobian estimate on a random sub-batch (frozen BatchNorm)."""
        stats = BatchStatistics(self.decoder)
        with torch.autocast(device_type=z.device.type, enabled=False):
            (z,) = at_least_float32(z)  # float64 stays float64
            finite_difference = self.jvp == "finite_difference"
            with stats.capture(differentiable=finite_difference):
                output = self.decoder(z)
            rows = self.jac_rows(z.shape[0])
            # eq. (8) from the base point g(z) already decoded: one sub-batch pass, its
            # statistics those of the base point, gradient included (BatchStatistics)
            base = output[rows] if finite_difference else None
            with stats.frozen():
                est = estimate_jacobian_sq_norm(self.decoder, z[rows], self.jvp, self.fd_eps,
                                                base=base)
        return output, est

    def setup(self, stage: str) -> None:
        """Give the constraint the run's ``max_steps`` (a mapped schedule needs it)."""
        if stage == "fit":
            self.constraint.setup(self.trainer.max_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The base's record, plus the constraint's settings (for the resume checks)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["constraint"] = self.constraint.checkpoint_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The base's checks, then hand the constraint its saved settings."""
        super().on_load_checkpoint(checkpoint)
        self.constraint.load_checkpoint_state(checkpoint.get("constraint") or {})

    def on_train_start(self) -> None:
        """Refuse a resume with other constraint settings than the checkpoint's."""
        self.constraint.check_resume()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Set (and log) the constraint's coefficients for the coming optimizer step."""
        for name, value in self.constraint.before_step(self.global_step).items():
            self.log(f"penalty/{name}", value, on_step=True, on_epoch=False)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """The loss's step, then the constraint's update (augmented Lagrangian: dual ascent).

        The constraint's batch values are averaged over processes, so every rank agrees.
        """
        total = super().training_step(batch, batch_idx)
        if total is not None:
            reduce = lambda v: self.trainer.strategy.reduce(v, reduce_op="mean")  # noqa: E731
            for name, value in self.constraint.after_step(reduce).items():
                self.log(f"penalty/{name}", value, on_step=True, on_epoch=False)
        return total
