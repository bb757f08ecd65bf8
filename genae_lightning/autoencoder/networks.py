"""A method's encoder and decoder: built by a ``Backbone``, or your own ``nn.Module``s.

Every method takes either ``backbone=`` (a factory that builds both networks for the data's
shapes; ``ConvBackbone()`` when nothing is given) or ``encoder=`` and ``decoder=`` (modules you
built). Modules you pass are checked once, at construction, by a dry forward pass of a batch of
two images: the encoder must map (2, C, H, W) to (2, encoder width) and the decoder (2, d) to
(2, C, H, W). They are not hyperparameters (a module is not a setting and is not pickled into a
checkpoint): loading such a checkpoint needs them again, ``Method.load_from_checkpoint(path,
encoder=..., decoder=...)``.
"""

from typing import Any

import torch
from torch import Tensor, nn

from genae_lightning.backbones.base import Backbone, ImageShape


def build_networks(
    owner: str,
    image_shape: ImageShape,
    latent_dim: int,
    encoder_features: int,
    backbone: Backbone | None,
    encoder: nn.Module | None,
    decoder: nn.Module | None,
) -> tuple[nn.Module, nn.Module]:
    """The (encoder, decoder) of a method, from ``backbone`` or from the modules given.

    Args:
        owner: The method's class name, for the messages.
        image_shape: (C, H, W) of the data.
        latent_dim: Latent dimension d (the decoder's input width).
        encoder_features: The encoder's output width (``2 * latent_dim`` for Gaussian posteriors).
        backbone: Encoder/decoder factory; ``ConvBackbone()`` when None and no modules are given.
        encoder: Your encoder, (B, C, H, W) -> (B, encoder_features); needs ``decoder`` too.
        decoder: Your decoder, (B, latent_dim) -> (B, C, H, W); needs ``encoder`` too.
    """
    given = [name for name, value in (("encoder", encoder), ("decoder", decoder))
             if value is not None]
    if given and backbone is not None:
        raise ValueError(
            f"{owner} got backbone={type(backbone).__name__}(...) and {' and '.join(given)}=: "
            "pass either a backbone (it builds both networks) or encoder= and decoder= (your own "
            "nn.Modules), not both"
        )
    if len(given) == 1:
        missing = "decoder" if given == ["encoder"] else "encoder"
        raise ValueError(
            f"{owner} got {given[0]}= but no {missing}=: pass both encoder= and decoder= (your "
            f"own nn.Modules), or neither and a backbone= (ConvBackbone() by default)"
        )
    if not given:
        if backbone is None:
            from genae_lightning.backbones import ConvBackbone

            backbone = ConvBackbone()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"backbone must be a genae_lightning.backbones.Backbone (e.g. ConvBackbone()), "
                f"got {type(backbone).__name__}"
            )
        return (backbone.encoder(image_shape, encoder_features),
                backbone.decoder(latent_dim, image_shape))
    assert encoder is not None and decoder is not None
    for name, module in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{owner}'s {name} must be a torch.nn.Module, got "
                            f"{type(module).__name__}")
    check_network(owner, "encoder", encoder, (2, *image_shape), (2, encoder_features),
                  _encoder_hint(owner, latent_dim, encoder_features))
    check_network(owner, "decoder", decoder, (2, latent_dim), (2, *image_shape),
                  f"it must map latents (B, latent_dim={latent_dim}) to images (B, C, H, W) "
                  f"with image_shape={tuple(image_shape)}")
    return encoder, decoder


def _encoder_hint(owner: str, latent_dim: int, encoder_features: int) -> str:
    if encoder_features == latent_dim:
        return f"it must map images to codes (B, latent_dim={latent_dim})"
    return (f"{owner}'s encoder outputs a Gaussian posterior: (B, {encoder_features}) = the mean "
            f"and the log-variance, each of latent_dim={latent_dim}")


@torch.no_grad()
def check_network(owner: str, name: str, module: nn.Module, in_shape: tuple[int, ...],
                  out_shape: tuple[int, ...], hint: str) -> None:
    """Run ``module`` once in eval mode on random input of ``in_shape``; check the output shape.

    Eval mode keeps BatchNorm's running statistics untouched; the module's mode is restored.
    """
    device = next((t.device for t in module.parameters()), torch.device("cpu"))
    dtype = next((t.dtype for t in module.parameters() if t.is_floating_point()), torch.float32)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        out: Any = module(torch.rand(*in_shape, device=device, dtype=dtype))
    except Exception as err:
        raise ValueError(
            f"{owner}'s {name} failed on a batch of shape {in_shape} ({type(err).__name__}: "
            f"{err}); {hint}"
        ) from err
    finally:
        for m, mode in modes.items():
            m.training = mode
    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    if got != out_shape:
        raise ValueError(
            f"{owner}'s {name} maps a batch of shape {in_shape} to {got}, expected "
            f"{out_shape}: {hint}"
        )


def network_record(encoder: nn.Module | None, decoder: nn.Module | None) -> dict[str, str] | None:
    """The class paths of modules passed as ``encoder=``/``decoder=``, recorded in checkpoints.

    Checkpoints hold their weights but not the modules, so loading needs them again; None when
    the networks came from a backbone.
    """
    if encoder is None:
        return None
    return {name: f"{type(m).__module__}.{type(m).__qualname__}"
            for name, m in (("encoder", encoder), ("decoder", decoder))}
