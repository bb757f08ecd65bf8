"""k-NN accuracy of latent codes as a torchmetrics metric; its twin is in ``functional/``."""

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from genae_lightning.functional.knn import knn_accuracy


def _concatenated(state: list[Tensor] | Tensor) -> Tensor:
    if isinstance(state, Tensor):
        return state
    return dim_zero_cat(state) if state else torch.empty(0)


class KNNAccuracy(Metric):
    """k-NN accuracy as a torchmetrics metric: codes and labels accumulate, ``compute`` fits.

    ``update(codes, labels, train=True)`` adds training codes, ``train=False`` evaluation codes;
    under DDP the lists are concatenated over processes (in rank order) when computing. The
    functional twin is :func:`knn_accuracy`.

    Args:
        k: Number of neighbours (the SWAE paper's table 3 uses 5).
        **kwargs: torchmetrics ``Metric`` options.

    Examples:
        >>> import torch
        >>> metric = KNNAccuracy(k=1)
        >>> metric.update(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1]), train=True)
        >>> metric.update(torch.tensor([[0.2], [4.0], [1.0]]), torch.tensor([0, 1, 1]), train=False)
        >>> round(float(metric.compute()), 4)
        0.6667
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    train_codes: list[Tensor]
    train_labels: list[Tensor]
    test_codes: list[Tensor]
    test_labels: list[Tensor]

    def __init__(self, k: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.k = k
        for name in ("train_codes", "train_labels", "test_codes", "test_labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, codes: Tensor, labels: Tensor, train: bool) -> None:
        """Add (N, d) codes and their (N,) labels to the training or the evaluation set."""
        split = "train" if train else "test"
        getattr(self, f"{split}_codes").append(codes.detach())
        getattr(self, f"{split}_labels").append(labels.detach())

    def compute(self) -> Tensor:
        """Accuracy of the k-NN classifier of the training codes on the evaluation codes."""
        sets = [_concatenated(getattr(self, name))  # a list, or a tensor once synced over DDP
                for name in ("train_codes", "train_labels", "test_codes", "test_labels")]
        return torch.tensor(knn_accuracy(*sets, k=self.k), dtype=torch.float64)
