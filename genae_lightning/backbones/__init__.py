"""Encoder/decoder zoo: one factory per architecture, shared by every method."""

from genae_lightning.backbones.base import Backbone
from genae_lightning.backbones.conv import ConvBackbone
from genae_lightning.backbones.dcgan import DCGANBackbone
from genae_lightning.backbones.mlp import MLPBackbone

__all__ = ["Backbone", "ConvBackbone", "DCGANBackbone", "MLPBackbone"]
