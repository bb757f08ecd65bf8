"""Image tensors as datasets: uint8 or float images in [0, 1], with their labels."""

import torch
from torch import Tensor
from torch.utils.data import TensorDataset


def to_unit_float(images: Tensor) -> Tensor:
    """Convert uint8 images in [0, 255] (or float images in [0, 1]) to float32 in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


class ImageTensorDataset(TensorDataset):
    """A ``TensorDataset`` of ``(image, label)`` pairs that yields float32 images in [0, 1].

    uint8 images stay uint8 in memory (4x smaller) and are converted when fetched.

    Args:
        images: Images, uint8 in [0, 255] or float in [0, 1], shape (N, C, H, W).
        labels: Integer class labels, shape (N,).
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        super().__init__(images, labels)

    @property
    def images(self) -> Tensor:
        """The stored images, (N, C, H, W), in their storage dtype."""
        return self.tensors[0]

    @property
    def labels(self) -> Tensor:
        """The labels, (N,)."""
        return self.tensors[1]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_unit_float(self.images[index]), self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, Tensor]]:
        """Fetch a whole batch with one gather and one conversion (the DataLoader uses this)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return list(zip(to_unit_float(self.images[index]), self.labels[index], strict=True))
