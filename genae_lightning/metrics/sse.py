"""Mean per-image sum of squared reconstruction errors (SWAE paper, table 3), as a metric."""

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from genae_lightning.functional.reconstruction import sum_squared_error


class ReconstructionSSE(Metric):
    """Mean over images of the sum of squared errors of their reconstructions.

    States are the summed per-image errors and the image count, summed over processes under DDP.
    The functional twin is :func:`~genae_lightning.functional.sum_squared_error` (per image).

    Args:
        **kwargs: torchmetrics ``Metric`` options.

    Examples:
        >>> import torch
        >>> metric = ReconstructionSSE()
        >>> metric.update(torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2))  # 4 per image
        >>> metric.update(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2))  # 0 per image
        >>> float(metric.compute())
        2.0
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, x: Tensor, x_hat: Tensor) -> None:
        """Add a batch of images (B, ...) and their reconstructions (same shape)."""
        errors = sum_squared_error(x.float(), x_hat.float())  # (B,)
        self.total += errors.sum().double()
        self.count += errors.numel()

    def compute(self) -> Tensor:
        """The mean per-image SSE."""
        if int(self.count) == 0:
            raise RuntimeError("ReconstructionSSE: no images were passed to update(x, x_hat); "
                               "update it with at least one batch before compute()")
        return self.total / self.count
