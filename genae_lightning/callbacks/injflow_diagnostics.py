"""Exact log-det diagnostics of InjFlow's bounds and Jacobian spectrum, on a fixed batch.

Every ``every_n_steps`` optimizer steps, on the same evaluation images, with the model in eval
mode (BatchNorm on running statistics, so every example has its own Jacobian; the training-mode
Jacobian that the loss sees differs where BatchNorm's batch statistics differ from its running
ones), :func:`injflow_diagnostics` measures (batch means unless said otherwise):

- ``diag/logdet_exact``: (1/2) ln det(J^T J) = sum_i ln s_i, the log-volume term of eq. (3);
- ``diag/bound_linear``, ``diag/bound_log``: the right-hand sides of eq. (4) (with the model's
  lambda) and eq. (5) from the exact ||J||_F^2; both upper-bound ``logdet_exact``;
- ``diag/bound_linear_est``, ``diag/bound_log_est``: the same with the one-sample ||J v||^2 of
  the model's ``jvp`` mode, clamped at eta^2 ||v||^2 as in the loss: the loss's Jacobian term
  plus the constant it drops; in expectation a bound for the linear form, not for the log form;
- ``diag/gap_linear``, ``diag/gap_log``, ``diag/gap_linear_est``, ``diag/gap_log_est``:
  each bound minus ``logdet_exact`` (>= 0 for the exact bounds);
- ``diag/sv_min``, ``diag/sv_max``, ``diag/condition``: medians over examples of the smallest
  and largest singular value of J_g(h(x)) and of their ratio;
- ``diag/frac_sv_below_eta``: fraction of all singular values below eta (local injectivity
  violations);
- ``diag/constraint``: ||x - g(h(x))||^2 (sum over pixels), the constraint of eq. (3).
"""

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from genae_lightning.callbacks.images import log_grid, output_folder
from genae_lightning.functional import (
    estimate_jacobian_sq_norm,
    gram_logdet,
    jacobian_matrix,
    linear_bound,
    linear_frobenius_term,
    log_bound,
    log_frobenius_term,
    singular_values,
    sum_squared_error,
)
from genae_lightning.functional.precision import to_module
from genae_lightning.methods.injflow import InjFlow
from genae_lightning.plots import plot_spectrum

QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class Diagnostics:
    """What :func:`injflow_diagnostics` returns.

    Attributes:
        metrics: ``{"diag/logdet_exact": ..., ...}`` (see the module docstring).
        singular_values: Singular values of J_g(h(x)) per example, descending, (B, d) float64.
    """

    metrics: dict[str, float]
    singular_values: Tensor


def injflow_diagnostics(
    model: InjFlow,
    x: Tensor,
    probes: int = 1,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> Diagnostics:
    """Exact log-det, the bounds of eqs. (4)/(5) exact and as estimated, and the spectrum.

    The model is put in eval mode for the measurement and restored after; the global random
    state is not touched (the probes come from ``generator``).

    Args:
        model: An InjFlow model (any ``bound``; ``lam`` sets the linear bound's lambda).
        x: Images, (B, C, H, W).
        probes: One-sample estimates per example; the ``_est`` metrics average over all of them
            (more probes: a closer look at the estimator's expectation, not a different one).
        generator: Random generator of the probes, on the model's device.
        chunk_size: Most rows per decoder pass of the exact Jacobian (B d rows in all).

    Returns:
        The metrics and the singular values.
    """
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    was_training, d = model.training, model.latent_dim
    model.eval()
    try:
        with torch.inference_mode(False), torch.no_grad():
            x = to_module(x, model).clone()
            z = model.encode(x).float()  # (B, d)
            output, jac = jacobian_matrix(model.decoder, z, chunk_size)  # (B, ...), (B, D, d)
            with torch.enable_grad():  # the reverse-mode estimator differentiates
                est = estimate_jacobian_sq_norm(model.decoder, z.repeat(probes, 1), model.jvp,
                                                model.fd_eps, generator)
    finally:
        model.train(was_training)
    exact = 0.5 * gram_logdet(jac)  # (B,)
    sv = singular_values(jac)  # (B, d)
    fro_sq = jac.double().pow(2).sum(dim=(1, 2))  # (B,)
    sq, v_sq = est.sq_norm.detach().double(), est.v_sq_norm.double()  # (probes B,)
    bounds = {
        "linear": linear_bound(fro_sq, d, model.lam),
        "log": log_bound(fro_sq, d),
        "linear_est": linear_frobenius_term(sq, v_sq, model.eta, model.lam)
        + 0.5 * d * (math.log(model.lam) - 1.0),
        "log_est": log_frobenius_term(sq, v_sq, d, model.eta) - 0.5 * d * math.log(d),
    }
    metrics = {"diag/logdet_exact": exact.mean()}
    for name, value in bounds.items():
        metrics[f"diag/bound_{name}"] = value.mean()
        metrics[f"diag/gap_{name}"] = (value.view(-1, len(exact)) - exact).mean()
    metrics |= {
        "diag/sv_min": sv[:, -1].median(),
        "diag/sv_max": sv[:, 0].median(),
        "diag/condition": (sv[:, 0] / sv[:, -1]).median(),
        "diag/frac_sv_below_eta": (sv < model.eta).double().mean(),
        "diag/constraint": sum_squared_error(x.double(), output.double()).mean(),
    }
    return Diagnostics({k: float(v) for k, v in metrics.items()}, sv)


class InjFlowDiagnostics(L.Callback):
    """Log exact log-det diagnostics of an InjFlow model every n steps (see module docstring).

    Metrics go to every logger as ``diag/<name>`` at the step they were measured, and to
    ``history`` (kept in checkpoints, so a resumed run's plot continues). The spectrum plot is
    rewritten as ``injflow_spectrum.png`` in ``save_dir`` after each measurement and logged as
    ``diag/spectrum`` to loggers that take images (W&B, TensorBoard). Measurements run on rank
    zero, before the first step, every ``every_n_steps`` steps, and at the end of training; they
    use their own random generator, so they do not change the training run.

    Cost: one decoder pass over ``num_examples * latent_dim`` inputs (plus ``probes`` passes of
    ``num_examples``), so it is meant for latent dimensions up to about 128.

    Args:
        every_n_steps: Measure every this many optimizer steps.
        num_examples: Size of the fixed batch (the first images of ``split``).
        probes: One-sample estimates per example (see :func:`injflow_diagnostics`).
        split: DataModule split the fixed batch comes from: "val", "test" or "train".
        seed: Seed of the probes (the same probes at every measurement).
        chunk_size: Most rows per decoder pass of the exact Jacobian.
        max_latent_dim: Refuse larger latents (the exact Jacobian's cost grows with d).
        save_dir: Folder of the PNG; the run's log dir when None.
    """

    def __init__(
        self,
        every_n_steps: int = 100,
        num_examples: int = 64,
        probes: int = 1,
        split: str = "val",
        seed: int = 0,
        chunk_size: int | None = None,
        max_latent_dim: int = 128,
        save_dir: str | None = None,
    ) -> None:
        for name, value in (("every_n_steps", every_n_steps), ("num_examples", num_examples),
                            ("probes", probes), ("max_latent_dim", max_latent_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if split not in ("val", "test", "train"):
            raise ValueError(f"split must be 'val', 'test' or 'train', got {split!r}")
        self.every_n_steps, self.num_examples, self.probes = every_n_steps, num_examples, probes
        self.split, self.seed, self.chunk_size = split, seed, chunk_size
        self.max_latent_dim, self.save_dir = max_latent_dim, save_dir
        self.history: list[dict[str, Any]] = []
        self._batch: Tensor | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Fail early on a module that is not InjFlow or whose latent is too large."""
        if not isinstance(pl_module, InjFlow):
            raise ValueError(
                f"InjFlowDiagnostics measures InjFlow's decoder Jacobian and bounds, got "
                f"{type(pl_module).__name__}; remove the callback or train an InjFlow model"
            )
        if pl_module.latent_dim > self.max_latent_dim:
            raise ValueError(
                f"latent_dim {pl_module.latent_dim} > max_latent_dim {self.max_latent_dim}: the "
                f"exact Jacobian needs {self.num_examples} x {pl_module.latent_dim} decoder "
                "passes per measurement; raise max_latent_dim (and maybe set chunk_size) if "
                "that is affordable"
            )

    def fixed_batch(self, trainer: L.Trainer) -> Tensor:
        """The first ``num_examples`` images of the split (the first loader batch as fallback)."""
        if self._batch is None:
            dataset = getattr(trainer.datamodule, f"{self.split}_dataset", None)
            if dataset is not None:
                count = min(self.num_examples, len(dataset))
                self._batch = torch.stack([dataset[i][0] for i in range(count)])
            else:
                loaders = trainer.val_dataloaders if self.split == "val" else (
                    trainer.train_dataloader)
                loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
                if loader is None:
                    raise RuntimeError(f"InjFlowDiagnostics found no {self.split} images")
                batch = next(iter(loader))
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                self._batch = x[: self.num_examples].clone()
        return self._batch

    def measure(self, trainer: L.Trainer, pl_module: InjFlow) -> None:
        """Measure at the current step, log, record and redraw the plot (rank zero).

        Every process must call it: the plot's folder is a collective under DDP.
        """
        folder = output_folder(trainer, self.save_dir)  # on every rank, before rank-zero work
        step = trainer.global_step
        if not trainer.is_global_zero or (self.history and self.history[-1]["step"] == step):
            return
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        diag = injflow_diagnostics(pl_module, self.fixed_batch(trainer), self.probes, generator,
                                   self.chunk_size)
        quantiles = torch.quantile(diag.singular_values.float(), torch.tensor(QUANTILES), dim=0)
        self.history.append({"step": step, **diag.metrics, "spectrum": quantiles.tolist()})
        for logger in trainer.loggers:
            logger.log_metrics(diag.metrics, step=step)
        image = plot_spectrum(
            [h["step"] for h in self.history],
            [torch.tensor(h["spectrum"]) for h in self.history],
            pl_module.eta,
            title=f"InjFlow ({pl_module.bound}) decoder Jacobian spectrum",
            path=folder / "injflow_spectrum.png",
        )
        log_grid(trainer, "diag/spectrum", image)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Measure the initial model (not again when resuming)."""
        if trainer.global_step == 0:
            self.measure(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        """Measure every ``every_n_steps`` optimizer steps."""
        if trainer.global_step % self.every_n_steps == 0:
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Measure the final model."""
        self.measure(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """The measurements so far, saved in checkpoints."""
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the history of a resumed run."""
        self.history = list(state_dict.get("history", []))
