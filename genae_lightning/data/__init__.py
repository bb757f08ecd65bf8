"""LightningDataModules for image data, sharing one base (:class:`ImageDataModule`)."""

from genae_lightning.data.base import ImageDataModule
from genae_lightning.data.celeba import CelebA
from genae_lightning.data.cifar import CIFAR10, CIFAR10Sub
from genae_lightning.data.coil20 import Coil20
from genae_lightning.data.digits import Digits
from genae_lightning.data.mnist import MNIST, FashionMNIST
from genae_lightning.data.moons import Moons
from genae_lightning.data.svhn import SVHN
from genae_lightning.data.synthetic import SyntheticImages

__all__ = [
    "CIFAR10",
    "CIFAR10Sub",
    "CelebA",
    "Coil20",
    "Digits",
    "FashionMNIST",
    "ImageDataModule",
    "MNIST",
    "Moons",
    "SVHN",
    "SyntheticImages",
]
