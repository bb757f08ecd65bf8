import pytest
import torch

from genae_lightning.backbones.mlp import MLPBackbone
from genae_lightning.data import Moons


def test_batches_are_real_valued_2d_points_with_moon_labels() -> None:
    dm = Moons(n_samples=200, batch_size=16, val_size=20, test_size=0.25)
    assert dm.image_shape == (1, 1, 2) and dm.num_classes == 2
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (130, 20, 50)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 1, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    splits = (dm.train_dataset, dm.val_dataset, dm.test_dataset)
    points = torch.cat([d.images for d in splits]).view(-1, 2)
    assert points.min() < -0.5 and points.max() > 1.5  # scikit-learn's coordinates, not [0, 1]
    labels = torch.cat([d.labels for d in splits])
    assert torch.bincount(labels).tolist() == [100, 100]
    # The upper moon (label 0) lies above the lower one on average.
    assert points[labels == 0, 1].mean() > points[labels == 1, 1].mean() + 0.5


def test_standardize_uses_training_statistics() -> None:
    dm = Moons(n_samples=400, standardize=True, test_size=100)
    data = dm.load_tensors()
    train = data.train_images.view(-1, 2)
    assert torch.allclose(train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(train.std(0), torch.ones(2), atol=1e-5)
    raw = Moons(n_samples=400, test_size=100).load_tensors()
    assert not torch.allclose(data.test_images, raw.test_images)
    assert torch.equal(data.test_labels, raw.test_labels)


def test_seed_and_noise() -> None:
    def points(**kwargs) -> torch.Tensor:
        return Moons(n_samples=50, **kwargs).load_tensors().train_images

    assert torch.equal(points(seed=1), points(seed=1))
    assert not torch.equal(points(seed=1), points(seed=2))
    exact = Moons(n_samples=50, noise=0).load_tensors()
    # Without noise the points lie on unit half circles centred at (0, 0) and (1, 0.5).
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5]])[exact.train_labels]
    radius = (exact.train_images.view(-1, 2) - centres).norm(dim=1)
    assert torch.allclose(radius, torch.ones_like(radius), atol=1e-5)


def test_mlp_backbone_takes_the_points() -> None:
    dm = Moons(n_samples=40, batch_size=8)
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    backbone = MLPBackbone(hidden=[8], output_activation="identity")
    z = backbone.encoder(dm.image_shape, 3)(x)
    assert z.shape == (8, 3)
    assert backbone.decoder(3, dm.image_shape)(z).shape == x.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"noise": -0.1}, "noise"),
        ({"noise": "0.1"}, "noise"),
        ({"test_size": 1.5}, "test_size"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Moons(**kwargs)
