"""Recompute BatchNorm running statistics before evaluating (eval mode uses them, not the batch's).

An exponential moving average (PyTorch's default momentum 0.1: about the last ten batches) can
lag a network whose feature statistics keep moving. InjFlow under a growing penalty is one such
case (docs/injflow.md): eval-mode reconstructions degrade while training is fine. Recomputing
the statistics exactly over training batches removes the lag. :func:`settle_batchnorm` detects
the lag (train- vs eval-mode reconstruction error on fixed batches) and recomputes only then;
``FitLatentPrior`` and ``genae evaluate`` run it.

Why not ``torch.optim.swa_utils.update_bn``: it resets every layer and sets ``momentum=None``,
so the statistics become the plain average of the per-batch means and of the per-batch unbiased
variances, each batch weighted alike whatever its size; that leaves out the spread between the
batch means, which the pooled variance computed here includes. A layer no batch reaches stays
reset (mean 0, variance 1) where here it keeps its statistics. And it runs with gradients on,
over the whole loader, in one process: here ``num_batches`` bounds the pass and ``reduce`` sums
the statistics over DDP processes.
"""

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from genae_lightning.functional.batchnorm import batchnorm_layers
from genae_lightning.functional.precision import to_module

__all__ = ["batchnorm_layers", "recalibrate_batchnorm", "recalibration_loader"]


Reduce = Callable[[Tensor], Tensor]
BatchNormMode = Literal["auto", "always", "never"]
# measured in docs/benchmarks.md ("BatchNorm statistics at the end of fit")
DEFAULT_TOLERANCE = 0.5
DEFAULT_BATCHES = 100
DEFAULT_CHECK_SAMPLES = 256


@torch.no_grad()
def recalibrate_batchnorm(
    module: nn.Module,
    batches: Iterable[Any],
    num_batches: int,
    progress: bool = False,
    reduce: Reduce | None = None,
) -> int:
    """Set every BatchNorm's running statistics to the exact ones of ``num_batches`` batches.

    Each batch (images, or ``(images, labels)``) goes through ``module.reconstruct`` in train
    mode without gradients, so the encoder's and the decoder's layers see what they see in
    training. Every BatchNorm layer's inputs are summed per channel (sum, sum of squares and
    count, in float64); the running mean becomes their mean and the running variance their
    unbiased variance (BatchNorm's definition), over all the batches' elements together. That is
    exact for batches of any sizes, unlike an average of per-batch variances. A layer that no
    batch reaches (one off the ``reconstruct`` path) keeps its statistics. The module's mode is
    restored afterwards.

    Under DDP pass ``reduce`` (an elementwise sum over processes, e.g.
    ``Collective(trainer.strategy).sum``): every process then holds the statistics one process
    would compute over all processes' batches. Every process must call it.

    Args:
        module: A genae method (anything with ``reconstruct``).
        batches: Training batches, e.g. a shuffled DataLoader.
        num_batches: How many batches to use (>= 1; per process under DDP).
        progress: Show a progress bar.
        reduce: Sum over processes (None: one process).

    Returns:
        The number of batches used here (fewer than ``num_batches`` if ``batches`` ran out).

    Raises:
        ValueError: If ``num_batches < 1``, the module has no BatchNorm layer or no batch came.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    layers = batchnorm_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no BatchNorm layer with running "
                         "statistics: there is nothing to recalibrate")
    sums: dict[nn.Module, Tensor] = {}

    def accumulate(layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach().to(torch.float64)
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        sums[layer] = stats if layer not in sums else sums[layer] + stats

    hooks = [m.register_forward_pre_hook(accumulate) for m in layers]
    was_training = module.training
    device = next(module.parameters()).device
    used = 0
    module.train()
    try:
        for batch in tqdm(islice(batches, num_batches), total=num_batches, disable=not progress,
                          desc="recalibrating BatchNorm", leave=False):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            module.reconstruct(to_module(x, module))
            used += 1
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    local = torch.tensor([float(used)], dtype=torch.float64, device=device)
    for m in layers:  # every process reduces the same tensors in the same order
        stats = sums.get(m, torch.zeros(2 * m.num_features + 1, dtype=torch.float64,
                                        device=device))
        sums[m] = reduce(stats) if reduce is not None else stats
    total = int((reduce(local) if reduce is not None else local).item())
    if total == 0:
        raise ValueError("recalibrate_batchnorm got no batch; pass a non-empty training loader")
    for m in layers:
        stats, c = sums[m], m.num_features
        n = stats[-1]
        if n == 0:  # no batch reached it (a layer off the reconstruction path): keep its own
            continue
        mean = stats[:c] / n
        var = (stats[c:2 * c] - n * mean * mean) / (n - 1).clamp_min(1)
        m.running_mean.copy_(mean)
        m.running_var.copy_(var.clamp_min(0))
        m.num_batches_tracked.fill_(total)
    return used


def fixed_batches(dataset: Dataset, num_samples: int, batch_size: int) -> list[Tensor]:
    """The first images of ``dataset`` in full batches of ``batch_size`` (at least one batch).

    ``num_samples`` is rounded down to whole batches (up to one batch when smaller), so no
    batch is too small for batch statistics.
    """
    whole = max(num_samples // batch_size, 1) * batch_size
    n = min(whole, len(dataset))  # type: ignore[arg-type]
    n = n // batch_size * batch_size or n  # a smaller dataset: one batch of all of it
    images = [dataset[i][0] if isinstance(dataset[i], (tuple, list)) else dataset[i]
              for i in range(n)]
    return list(torch.stack(images).split(batch_size))


@torch.no_grad()
def mode_errors(module: nn.Module, batches: list[Tensor]) -> tuple[float, float]:
    """Mean per-image ||x - g(h(x))||^2 with BatchNorm's batch and with its running statistics.

    Returns ``(train_error, eval_error)``. The train-mode pass puts only the BatchNorm layers in
    train mode (other layers, e.g. dropout, stay in eval mode) and does not touch their running
    statistics. The module's modes are restored.
    """
    layers = batchnorm_layers(module)
    was_training = {m: m.training for m in module.modules()}
    errors = {}
    try:
        module.eval()
        for train in (True, False):
            for m in layers:
                m.train(train)
                m.track_running_stats = not train  # train mode without updating the statistics
            total, count = 0.0, 0
            for x in batches:
                x = to_module(x, module)
                diff = (x - module.reconstruct(x)).float().flatten(1)
                total += float(diff.pow(2).sum())
                count += x.shape[0]
            errors[train] = total / count
    finally:
        for m in layers:
            m.track_running_stats = True
        for m, mode in was_training.items():
            m.training = mode
    return errors[True], errors[False]


def settle_batchnorm(
    module: nn.Module,
    check_batches: list[Tensor],
    train_batches: Iterable[Any],
    mode: BatchNormMode = "auto",
    tolerance: float = 0.5,
    num_batches: int = 100,
    reduce: Reduce | None = None,
) -> dict[str, Any] | None:
    """Check the running statistics against the batch statistics and recalibrate if needed.

    Compares the reconstruction error on ``check_batches`` in train mode (batch statistics) and
    in eval mode (running statistics); "auto" recalibrates (:func:`recalibrate_batchnorm` over
    ``num_batches`` of ``train_batches``) when ``|eval - train| > tolerance * train``, "always"
    always, "never" never. Under DDP every process must call it with the same
    ``check_batches``; the decision is the same everywhere because the weights and running
    statistics are.

    Args:
        module: A genae method.
        check_batches: Fixed held-out batches (e.g. :func:`fixed_batches` of the validation set).
        train_batches: Training batches for the recalibration.
        mode: "auto", "always" or "never".
        tolerance: Relative difference of the two errors above which "auto" recalibrates.
        num_batches: Training batches of the recalibration (per process under DDP).
        reduce: Sum over processes (see :func:`recalibrate_batchnorm`).

    Returns:
        The record ``{"checked", "mode", "train_error", "eval_error", "relative_difference",
        "tolerance", "recalibrated", "batches", "eval_error_after"}``, or None when the module
        has no BatchNorm layer with running statistics.
    """
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"batchnorm mode must be 'auto', 'always' or 'never', got {mode!r}")
    if tolerance < 0:
        raise ValueError(f"the BatchNorm tolerance must be >= 0, got {tolerance}")
    if not batchnorm_layers(module):
        return None
    train_error, eval_error = mode_errors(module, check_batches)
    difference = abs(eval_error - train_error) / max(train_error, 1e-12)
    recalibrate = mode == "always" or (mode == "auto" and difference > tolerance)
    record: dict[str, Any] = {
        "checked": True, "mode": mode, "train_error": train_error, "eval_error": eval_error,
        "relative_difference": difference, "tolerance": tolerance, "recalibrated": recalibrate,
        "batches": 0,
    }
    if recalibrate:
        used = recalibrate_batchnorm(module, train_batches, num_batches, reduce=reduce)
        total = torch.tensor([float(used)])
        record["batches"] = int(reduce(total).item()) if reduce is not None else used
        record["eval_error_after"] = mode_errors(module, check_batches)[1]
    return record


def settle_for_evaluation(
    module: nn.Module,
    train: Dataset,
    held_out: Dataset | None,
    batch_size: int,
    recalibrate: int = 0,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any] | None:
    """The BatchNorm statistics ``genae evaluate`` uses, and the record of how they were chosen.

    ``recalibrate > 0`` (``--recalibrate_batchnorm N``) recomputes them over that many training
    batches. Otherwise a checkpoint that ``FitLatentPrior`` checked (``module.batchnorm_check``)
    is used as saved, and an unchecked one gets :func:`settle_batchnorm`'s "auto" check with the
    default tolerance and batches, on the first images of ``held_out`` (the training set when
    None). The record's ``source`` says which; None when the module has no BatchNorm.
    """
    if recalibrate > 0:  # the explicit request (an error without BatchNorm layers)
        used = recalibrate_batchnorm(module, recalibration_loader(train, batch_size, seed),
                                     recalibrate, progress)
        return {"source": "--recalibrate_batchnorm", "recalibrated": True, "batches": used,
                "batch_size": batch_size}
    if not batchnorm_layers(module):
        return None
    recorded = getattr(module, "batchnorm_check", None)
    if recorded is not None:
        return {**recorded, "source": "checkpoint"}
    check = fixed_batches(held_out if held_out is not None else train, DEFAULT_CHECK_SAMPLES,
                          batch_size)
    record = settle_batchnorm(module, check, recalibration_loader(train, batch_size, seed),
                              "auto", DEFAULT_TOLERANCE, DEFAULT_BATCHES)
    assert record is not None  # the module has BatchNorm layers
    return {**record, "split": "val" if held_out is not None else "train",
            "source": "checked here"}


def describe(record: dict[str, Any] | None) -> str:
    """One line saying what :func:`settle_batchnorm` or :func:`settle_for_evaluation` did."""
    if record is None:
        return "BatchNorm: the model has no BatchNorm running statistics; nothing to check"
    if record.get("source") == "--recalibrate_batchnorm":
        return (f"BatchNorm: recomputed the running statistics over {record['batches']} "
                "training batches (--recalibrate_batchnorm)")
    if record.get("source") == "checkpoint":
        return ("BatchNorm: using the checkpoint's statistics, checked at the end of fit ("
                + ("recalibrated" if record["recalibrated"] else "kept") + "; error "
                f"{record['train_error']:.4g} with batch, {record['eval_error']:.4g} with "
                "running statistics)")
    line = (f"BatchNorm check ({record['mode']}): reconstruction error {record['train_error']:.4g} "
            f"with batch statistics, {record['eval_error']:.4g} with running statistics "
            f"(relative difference {record['relative_difference']:.3g}, tolerance "
            f"{record['tolerance']:.3g}); ")
    if record["recalibrated"]:
        return line + (f"recomputed the running statistics over {record['batches']} training "
                       f"batches: eval-mode error now {record['eval_error_after']:.4g}")
    return line + "kept the running statistics"


def recalibration_loader(dataset: Dataset, batch_size: int, seed: int = 0) -> DataLoader:
    """A seeded, shuffled loader over ``dataset`` for :func:`recalibrate_batchnorm`."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))
