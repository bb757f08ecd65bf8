"""genae-lightning: generative autoencoders in PyTorch Lightning."""

__version__ = "0.2.0"
