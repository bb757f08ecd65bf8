"""Keep BatchNorm running statistics out of passes that are not part of the training objective.

A training step sometimes runs a network again on inputs it has already seen in the step: the
perturbed pass g(z + eps v) of the finite-difference J v estimator, or PGA's h(z) and
h(z + delta). In train mode each such pass would move the running statistics once more, towards
an input distribution already counted (the running mean moves about twice as far per step).
:func:`frozen_batchnorm_stats` runs such a pass with batch statistics, exactly as in training,
but leaves the running statistics and ``num_batches_tracked`` untouched.
"""

import contextlib
from collections.abc import Iterator

from torch import nn


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` (1d, 2d, 3d, sync) that track running statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def frozen_batchnorm_stats(*modules: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers in train mode normalise but update no running statistic.

    Each layer in train mode has ``track_running_stats`` switched off for the block: PyTorch's
    BatchNorm then normalises with the batch's statistics, as in train mode, and passes no
    running buffers to ``F.batch_norm``, so ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` are neither read nor written. The function computed is the training
    one, bit for bit. Layers in eval mode are left alone (they update nothing anyway, and with
    ``track_running_stats`` off they would switch to batch statistics).

    Why not the alternatives: copying saved statistics back after the pass writes in place into
    buffers that autograd saved for the backward of the step's earlier passes ("modified by an
    inplace operation" at ``backward``); momentum 0 still counts the batch in
    ``num_batches_tracked``, means something else for ``momentum=None`` (cumulative average), and
    turns the running statistics into NaN when the batch's are not finite (0 * NaN). Switching the
    attribute is exact in eager mode; a ``torch.compile``'d module guards on it and compiles the
    frozen variant once more.

    Args:
        modules: Modules whose BatchNorm layers (at any depth) are frozen.

    Example:
        >>> import torch
        >>> bn = torch.nn.BatchNorm1d(2)
        >>> with frozen_batchnorm_stats(bn):
        ...     _ = bn(torch.randn(4, 2))
        >>> int(bn.num_batches_tracked), bn.running_mean.tolist()
        (0, [0.0, 0.0])
    """
    layers = [m for module in modules for m in batchnorm_layers(module) if m.training]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True
