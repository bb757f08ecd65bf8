"""genae-lightning: generative autoencoders in PyTorch Lightning."""

__version__ = "0.1.0"
