"""scikit-learn's two moons: 2-D points for the dpVAE paper's toy figures; made in memory."""

import torch
from sklearn.datasets import make_moons

from genae_lightning.data.base import (
    ImageDataModule,
    ImageTensors,
    check_int,
    check_split_size,
    seeded_test_split,
)


class Moons(ImageDataModule):
    """Two interleaving half circles in 2-D (``sklearn.datasets.make_moons``), with noise.

    Each sample is a point ``(x1, x2)`` shaped as a 1x1x2 "image", so that image backbones
    that flatten ``(C, H, W)`` (e.g. ``MLPBackbone``) take it as is; batches are ``x`` of
    shape (B, 1, 1, 2) and ``y`` (B,), the moon (0 or 1) a point belongs to.

    Values are real-valued coordinates, **not** in [0, 1]: about [-1, 2] x [-0.5, 1] as
    scikit-learn makes them, or zero-mean unit-variance per coordinate with ``standardize``
    (statistics of the training part, applied to every split). Use a decoder with an identity
    output (``MLPBackbone(output_activation="identity")``) and a Gaussian/MSE reconstruction
    loss, not a sigmoid/Bernoulli one.

    The ``n_samples`` points (half per moon) are split (seeded) into test and train, then
    train into train and val.

    Args:
        n_samples: Points in all, before the test and val splits.
        noise: Standard deviation of the Gaussian noise added to the points (0 = exact moons).
        standardize: Shift and scale each coordinate to zero mean and unit variance (training
            part's statistics); ``False`` keeps scikit-learn's coordinates.
        batch_size: Samples per batch, for every split.
        num_workers: DataLoader worker processes (0 makes batches in the main process).
        in_memory: Keep the data on the training device and batch by indexing (see
            :class:`~genae_lightning.data.ImageDataModule`).
        val_size: Validation samples held out of the training part: a count (int) or a
            fraction (float in [0, 1)).
        test_size: Test samples held out of all ``n_samples``: a count (int) or a fraction
            (float in [0, 1)).
        seed: Seed of the points, the noise and the splits.

    Reference:
        Bhalodia, Lee and Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs",
        ACCV 2020 (Figures 1 and 3 train on two moons).
    """

    IMAGE_SHAPE = (1, 1, 2)
    NUM_CLASSES = 2

    def __init__(
        self,
        n_samples: int = 10000,
        noise: float = 0.1,
        standardize: bool = False,
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
        check_int("n_samples", n_samples, minimum=2)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or noise < 0:
            raise ValueError(
                f"noise must be a standard deviation >= 0, got {noise!r}; pass e.g. "
                f"--data.noise 0.1."
            )
        check_split_size("test_size", test_size)
        self.n_samples = n_samples
        self.noise = float(noise)
        self.standardize = standardize
        self.test_size = test_size

    def load_tensors(self) -> ImageTensors:
        """Make the points (seeded), hold out the test part, standardise if asked."""
        points, moon = make_moons(self.n_samples, noise=self.noise, random_state=self.seed)
        points = torch.from_numpy(points).float().view(-1, *self.IMAGE_SHAPE)  # (N, 1, 1, 2)
        data = seeded_test_split(points, torch.from_numpy(moon).long(), self.test_size, self.seed)
        if not self.standardize:
            return data
        mean = data.train_images.mean(0, keepdim=True)  # (1, 1, 1, 2)
        std = data.train_images.std(0, keepdim=True).clamp_min(1e-12)
        return data._replace(
            train_images=(data.train_images - mean) / std,
            test_images=(data.test_images - mean) / std,
        )
