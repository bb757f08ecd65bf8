"""Replay a train-mode pass's BatchNorm batch statistics in a second pass on a sub-batch."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from genae_lightning.functional.precision import at_least_float32


class BatchStatistics:
    """Capture each train-mode BatchNorm's batch mean and variance, then use them frozen.

    ``InjFlow(jac_fraction < 1)`` decodes the full batch once (for the reconstruction), then
    estimates the Jacobian term on a sub-batch. Run on the sub-batch in train mode, BatchNorm would
    normalise with the sub-batch's statistics (another function than the one trained) and update
    its running statistics a second time. Inside :meth:`frozen`, every BatchNorm that was in train
    mode during :meth:`capture` normalises with the full batch's statistics instead, as constants
    (eval-mode arithmetic, no running-statistics update), so the sub-batch sees the decoder of the
    full-batch pass. Layers in eval mode (validation) are left as they are.

    ``capture(differentiable=True)`` keeps the statistics in the autograd graph (functions of the
    parameters and of the full batch), and :meth:`frozen` then normalises with them explicitly, so
    a gradient through the sub-batch pass reaches them as it does through the full pass. The
    finite-difference estimator needs this: its quotient (g_sub(z + eps v) - g_full(z)) / eps
    mixes the two passes, and statistics held constant in one of them only would leave the full
    pass's statistics gradient, times 1 / eps, in the quotient.

    Args:
        module: The network whose BatchNorm layers are captured (e.g. the decoder).
    """

    def __init__(self, module: nn.Module) -> None:
        self.layers = [m for m in module.modules() if isinstance(m, _BatchNorm)]
        self.stats: dict[int, tuple[Tensor, Tensor]] = {}

    @contextmanager
    def capture(self, differentiable: bool = False) -> Iterator[None]:
        """Record the batch statistics of every train-mode BatchNorm's input in this block.

        Args:
            differentiable: Keep them in the autograd graph (constants when False).
        """
        self.stats = {}

        def hook(layer: nn.Module, args: tuple[Tensor, ...]) -> None:
            if not layer.training:
                return
            if isinstance(layer, nn.SyncBatchNorm) and synchronised():
                raise ValueError(
                    "a sub-batch Jacobian term (InjFlow's jac_fraction < 1) needs the batch "
                    "statistics of the full pass, but SyncBatchNorm takes them across processes "
                    "and this replay only sees this process's batch; train with "
                    "trainer.sync_batchnorm=False, or with jac_fraction=1"
                )
            (x,) = at_least_float32(args[0] if differentiable else args[0].detach())
            dims = [0, *range(2, x.dim())]
            self.stats[id(layer)] = (x.mean(dim=dims), x.var(dim=dims, unbiased=False))

        handles = [layer.register_forward_pre_hook(hook) for layer in self.layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Normalise with the captured statistics (eval-mode arithmetic) inside this block."""
        saved = []
        for layer in self.layers:
            if id(layer) not in self.stats:
                continue
            saved.append((layer, layer.training, layer.running_mean, layer.running_var))
            mean, var = self.stats[id(layer)]
            if mean.requires_grad:  # BatchNorm's own kernel takes no gradient for its statistics
                layer.forward = partial(normalise, layer, mean, var)
            else:
                layer.running_mean, layer.running_var = mean, var
            layer.training = False
        try:
            yield
        finally:
            for layer, training, mean, var in saved:
                layer.running_mean, layer.running_var, layer.training = mean, var, training
                layer.__dict__.pop("forward", None)


def synchronised() -> bool:
    """Whether SyncBatchNorm would combine statistics across processes here."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and (
        torch.distributed.get_world_size() > 1)


def normalise(layer: _BatchNorm, mean: Tensor, var: Tensor, x: Tensor) -> Tensor:
    """BatchNorm's eval-mode arithmetic with the given (differentiable) statistics."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + layer.eps)
    if layer.affine:
        y = y * layer.weight.view(shape) + layer.bias.view(shape)
    return y
