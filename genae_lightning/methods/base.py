"""The thin base every method derives from: backbone + loss + sampling + logging."""

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.backbones import Backbone, ConvBackbone
from genae_lightning.backbones.base import ImageShape, check_image_shape
from genae_lightning.priors import POSTHOC_PRIORS, Prior, StandardNormal, prior_from_state


# Optimizer classes are hyperparameters too (``optimizer=torch.optim.Adam``): allow them in
# weights-only checkpoint loading, which Lightning uses when resuming a run.
torch.serialization.add_safe_globals(
    [getattr(torch.optim, name) for name in torch.optim.__all__
     if isinstance(getattr(torch.optim, name), type)]
)


@dataclass
class LossOutput:
    """What a method's ``loss`` returns.

    Attributes:
        total: Scalar to minimise.
        terms: Named scalar parts, logged as ``<stage>/<name>``.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


class GenerativeAutoencoder(L.LightningModule):
    """Base LightningModule: an encoder, a decoder, a prior and a ``loss``.

    Subclasses write ``loss(x) -> LossOutput`` and, where needed, ``encode`` and ``sample``.
    The base owns the train/val steps, logging, the optimizer, post-hoc priors and checkpoints.

    Args:
        image_shape: (C, H, W) of the data; linked from the DataModule by the CLI.
        latent_dim: Dimension d of the latent space.
        backbone: Encoder/decoder factory; the InjFlow paper's ``ConvBackbone()`` by default.
        optimizer: Optimizer factory taking the parameters; Adam with lr 1e-3 by default.
        encoder_features: Width of the encoder output (``2 * latent_dim`` for Gaussian posteriors);
            ``latent_dim`` when None.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder_features: int | None = None,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = latent_dim
        backbone = backbone if backbone is not None else ConvBackbone()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"backbone must be a genae_lightning.backbones.Backbone (e.g. ConvBackbone()), "
                f"got {type(backbone).__name__}"
            )
        self.encoder = backbone.encoder(self.image_shape, encoder_features or latent_dim)
        self.decoder = backbone.decoder(latent_dim, self.image_shape)
        self.optimizer_factory = optimizer
        self.prior: Prior = StandardNormal(latent_dim)
        self.posthoc_priors = nn.ModuleDict()

    # ----------------------------------------------------------------- the model
    def encode(self, x: Tensor) -> Tensor:
        """Deterministic code of x, (B, C, H, W) -> (B, d)."""
        self._check_input(x)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Images from latents, (B, d) -> (B, C, H, W)."""
        return self.decoder(z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """decode(encode(x))."""
        return self.decode(self.encode(x))

    def loss(self, x: Tensor) -> LossOutput:
        """The method's objective on a batch of images, to be minimised."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss(x)")

    # ----------------------------------------------------------------- sampling
    def get_prior(self, name: str = "standard") -> Prior:
        """The prior called ``name``: "standard" (the method's own) or a fitted post-hoc prior."""
        if name == "standard":
            return self.prior
        if name not in POSTHOC_PRIORS:
            raise ValueError(f"unknown prior {name!r}: expected 'standard', 'gaussian' or 'gmm'")
        if name not in self.posthoc_priors:
            raise RuntimeError(
                f"the post-hoc {name!r} prior has not been fitted on this model: train with the "
                "FitLatentPrior callback, or call FitLatentPrior.fit_module(model, dataloader)"
            )
        return self.posthoc_priors[name]  # type: ignore[return-value]

    def set_posthoc_prior(self, name: str, prior: Prior) -> None:
        """Store a fitted post-hoc prior (saved in checkpoints)."""
        if prior.dim != self.latent_dim:
            raise ValueError(f"prior dimension {prior.dim} != latent_dim {self.latent_dim}")
        self.posthoc_priors[name] = prior.to(self.device)

    @torch.no_grad()
    def sample(
        self, n: int, prior: str = "standard", generator: torch.Generator | None = None
    ) -> Tensor:
        """Decode n latents drawn from ``prior``; returns (n, C, H, W)."""
        z = self.get_prior(prior).sample(n, generator=generator).to(self.device)
        return self.decode(z)

    # ----------------------------------------------------------------- training
    @property
    def loss_needs_grad(self) -> bool:
        """Whether ``loss`` takes derivatives itself (then validation runs it with autograd on)."""
        return False

    def _check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{type(self).__name__} was built for images of shape {self.image_shape}, got a "
                f"batch of shape {tuple(x.shape)}; set model.image_shape to the data's shape "
                "(the CLI links it from the DataModule)"
            )

    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if stage != "train" and self.loss_needs_grad:
            with torch.inference_mode(False), torch.enable_grad():
                out = self.loss(x.clone())
            out = LossOutput(out.total.detach(), {k: v.detach() for k, v in out.terms.items()})
        else:
            out = self.loss(x)
        batch_size = x.shape[0]
        on_step = stage == "train"
        self.log(f"{stage}/loss", out.total, prog_bar=True, on_step=on_step, on_epoch=not on_step,
                 batch_size=batch_size, sync_dist=not on_step)
        for name, value in out.terms.items():
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=not on_step,
                     batch_size=batch_size, sync_dist=not on_step)
        if stage != "train":
            mse = (self.reconstruct(x) - x).pow(2).mean()
            self.log(f"{stage}/rec_mse", mse, batch_size=batch_size, sync_dist=True)
        return out.total

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One optimisation step's loss."""
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Validation loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Test loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "test")

    def configure_optimizers(self) -> Any:
        """The optimizer from the ``optimizer`` factory over all parameters."""
        return self.optimizer_factory(self.parameters())

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the method class so `genae sample` can rebuild the model."""
        from genae_lightning import __version__

        cls = type(self)
        checkpoint["genae"] = {
            "method": f"{cls.__module__}.{cls.__qualname__}",
            "version": __version__,
            "posthoc_priors": sorted(self.posthoc_priors.keys()),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the fitted post-hoc priors before the state dict is loaded."""
        state = checkpoint.get("state_dict", {})
        for name in checkpoint.get("genae", {}).get("posthoc_priors", []):
            prefix = f"posthoc_priors.{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            self.posthoc_priors[name] = prior_from_state(name, sub)
