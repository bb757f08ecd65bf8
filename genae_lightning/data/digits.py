"""scikit-learn's bundled 8x8 handwritten digits (1797 images): no download, loads instantly."""

import torch
from sklearn.datasets import load_digits

from genae_lightning.data.base import (
    ImageDataModule,
    ImageTensors,
    check_split_size,
    seeded_test_split,
)


class Digits(ImageDataModule):
    """The UCI 8x8 handwritten digits bundled with scikit-learn, scaled to [0, 1], 1x8x8.

    The 1797 images are split (seeded) into test and train, then train into train and val.

    Args:
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 loads in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the training part: a count (int) or a
            fraction (float in [0, 1)).
        test_size: Test samples held out of all 1797: a count (int) or a fraction (float in
            [0, 1)).
        seed: Seed of the test and val splits; the same seed gives the same splits.
    """

    IMAGE_SHAPE = (1, 8, 8)
    NUM_CLASSES = 10

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int = 0,
        in_memory: bool = False,
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, val_size=val_size, seed=seed,
            in_memory=in_memory,
        )
        check_split_size("test_size", test_size)
        self.test_size = test_size

    def load_tensors(self) -> ImageTensors:
        """Load the digits (pixel values 0..16, divided by 16) and split off the test part."""
        digits = load_digits()
        images = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)  # (N, 1, 8, 8)
        labels = torch.from_numpy(digits.target).long()  # (N,)
        return seeded_test_split(images, labels, self.test_size, self.seed)
