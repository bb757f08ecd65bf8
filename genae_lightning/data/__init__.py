"""LightningDataModules for image data, sharing one base (:class:`ImageDataModule`)."""

from genae_lightning.data.base import ImageDataModule
from genae_lightning.data.digits import Digits
from genae_lightning.data.mnist import MNIST, FashionMNIST
from genae_lightning.data.synthetic import SyntheticImages

__all__ = ["Digits", "FashionMNIST", "ImageDataModule", "MNIST", "SyntheticImages"]
