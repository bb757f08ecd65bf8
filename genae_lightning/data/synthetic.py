"""Random smooth images of any shape: for smoke tests and for trying a config on no real data."""

import math

import torch
from torch.nn import functional as F

from genae_lightning.data.base import ImageDataModule, ImageTensors, check_int


def smooth_noise(
    num_images: int, image_shape: tuple[int, int, int], generator: torch.Generator
) -> torch.Tensor:
    """Uniform noise on a 4x coarser grid, bilinearly upsampled: smooth-ish images in [0, 1].

    Args:
        num_images: How many images.
        image_shape: ``(C, H, W)`` of one image.
        generator: Source of randomness.

    Returns:
        float32 images of shape ``(num_images, C, H, W)``, values in [0, 1].
    """
    channels, height, width = image_shape
    coarse = torch.rand(
        num_images, channels, math.ceil(height / 4), math.ceil(width / 4), generator=generator
    )
    # Bilinear weights are convex, so values stay in [0, 1].
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


class SyntheticImages(ImageDataModule):
    """Random smooth images with random labels, of any shape, made in memory (seeded).

    ``num_samples`` images form the training part (split into train and val), and as many
    again the test split. Use it to run any config for a few steps on data of the right shape,
    e.g. ``genae fit --config configs/injflow_mnist.yaml --data SyntheticImages
    --data.image_shape [1,28,28] --trainer.max_steps 2``.

    Args:
        image_shape: Shape ``(C, H, W)`` of one image.
        num_samples: Images in the training part (train + val); the test split has as many.
        num_classes: Number of classes of the random labels.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 makes batches in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the training part: a count (int) or a
            fraction (float in [0, 1)).
        seed: Seed of the images, the labels and the train/val split.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        num_samples: int = 64,
        num_classes: int = 10,
        batch_size: int = 16,
        num_workers: int = 0,
        in_memory: bool = False,
        val_size: int | float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size, num_workers=num_workers, val_size=val_size, seed=seed,
            in_memory=in_memory,
        )
        if len(image_shape) != 3:
            raise ValueError(
                f"image_shape must be (C, H, W), three positive integers, got {image_shape!r}; "
                f"pass e.g. --data.image_shape [1,28,28]."
            )
        for dim in image_shape:
            check_int("image_shape entries", dim, minimum=1)
        check_int("num_samples", num_samples, minimum=1)
        check_int("num_classes", num_classes, minimum=1)
        self._image_shape = (image_shape[0], image_shape[1], image_shape[2])
        self._num_classes = num_classes
        self.num_samples = num_samples

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image, as configured."""
        return self._image_shape

    @property
    def num_classes(self) -> int:
        """Number of classes, as configured."""
        return self._num_classes

    def load_tensors(self) -> ImageTensors:
        """Make ``2 * num_samples`` images and labels: the training part, then the test split."""
        generator = torch.Generator().manual_seed(self.seed)
        n = self.num_samples
        images = smooth_noise(2 * n, self.image_shape, generator)  # (2n, C, H, W)
        labels = torch.randint(self.num_classes, (2 * n,), generator=generator)  # (2n,)
        return ImageTensors(images[:n], labels[:n], images[n:], labels[n:])
