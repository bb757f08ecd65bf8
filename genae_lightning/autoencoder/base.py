"""The base every method derives from: encode, decode, reconstruct, sample, loss, one step.

The rest lives beside it in this package: the networks (backbone or your own modules) in
:mod:`.networks`, per-step seeding in :mod:`.seeding`, input checks in :mod:`.inputs`, the
non-finite error in :mod:`.nonfinite` (its policy in the ``NonFiniteGuard`` callback),
Gaussian-posterior methods in :mod:`.gaussian` and latent adversaries in :mod:`.adversarial`.
Checkpoints, saved hyperparameters and sharing are ``genae_lightning.checkpoints``'
(:mod:`genae_lightning.checkpoints.module`, :mod:`genae_lightning.checkpoints.pretrained`);
post-hoc priors are ``priors.posthoc``'s.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.docstrings import document_shared_args
from genae_lightning.autoencoder.inputs import check_batch, check_pixel_range, check_sample_count
from genae_lightning.autoencoder.networks import build_networks, network_record
from genae_lightning.autoencoder.nonfinite import (
    NonFiniteHandler,
    NonFiniteLossError,
    stop_if_nonfinite,
)
from genae_lightning.autoencoder.seeding import initial_noise_seed, seeded, step_seed
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape, check_image_shape
from genae_lightning.checkpoints.module import CheckpointedModule
from genae_lightning.checkpoints.pretrained import PretrainedMixin
from genae_lightning.functional.precision import to_module
from genae_lightning.priors import Prior, StandardNormal
from genae_lightning.priors.posthoc import PosthocPriors

__all__ = ["GenerativeAutoencoder", "LossOutput", "NonFiniteLossError"]


@dataclass
class LossOutput:
    """What a method's ``loss`` returns.

    Attributes:
        total: Scalar to minimise.
        terms: Named scalar parts, logged as ``<stage>/<name>``.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


class GenerativeAutoencoder(PretrainedMixin, CheckpointedModule):
    """Base LightningModule: an encoder, a decoder, a prior and a ``loss``.

    Subclasses write ``loss(x) -> LossOutput`` and, where needed, ``encode`` and ``sample``.
    Methods with other players (a discriminator) override the two hooks of a training step,
    ``training_loss`` and ``update``. ``model(x)`` is ``reconstruct(x)``.

    The networks come from ``backbone`` or are passed as ``encoder`` and ``decoder`` (see
    :mod:`genae_lightning.autoencoder.networks`). Those two modules are never saved as
    hyperparameters (``save_hyperparameters`` leaves them out), so a checkpoint of such a model
    is loaded with them again: ``Method.load_from_checkpoint(path, encoder=..., decoder=...)``.

    The constructor arguments every method shares are described once, in
    :data:`~genae_lightning.autoencoder.docstrings.SHARED_ARGS`; each subclass's docstring gets
    those its ``__init__`` takes and it does not describe itself (``__init_subclass__``).

    Args:
        encoder_features: Width of the encoder output (``2 * latent_dim`` for Gaussian posteriors);
            ``latent_dim`` when None.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        document_shared_args(cls)  # the shared arguments' entries, in its Args section

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder_features: int | None = None,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = latent_dim
        self.encoder, self.decoder = build_networks(
            type(self).__name__, self.image_shape, latent_dim, encoder_features or latent_dim,
            backbone, encoder, decoder)
        self.custom_networks = network_record(encoder, decoder)  # loading needs them again
        self.optimizer_factory = optimizer
        self.prior: Prior = StandardNormal(latent_dim)
        self.posthoc_priors = PosthocPriors(latent_dim)
        self.register_buffer("noise_seed", initial_noise_seed())  # see ``step_rng``
        self.register_buffer("nonfinite_skipped", torch.tensor(0))  # NonFiniteGuard's count
        self.nonfinite_handler: NonFiniteHandler = stop_if_nonfinite  # NonFiniteGuard's, if any
        self._input_checked = False


    def forward(self, x: Tensor) -> Tensor:
        """``model(x)``: the reconstruction ``decode(encode(x))``, (B, C, H, W)."""
        return self.reconstruct(x)

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

    def get_prior(self, name: str = "standard") -> Prior:
        """The prior called ``name``: "standard" (the method's own) or a fitted post-hoc prior."""
        return self.prior if name == "standard" else self.posthoc_priors.get(name)

    def set_posthoc_prior(self, name: str, prior: Prior) -> None:
        """Store a fitted post-hoc prior (saved in checkpoints)."""
        self.posthoc_priors.set(name, prior, self.device)

    @torch.no_grad()
    def sample(
        self, n: int, prior: str = "standard", generator: torch.Generator | None = None
    ) -> Tensor:
        """Decode n latents drawn from ``prior``; returns (n, C, H, W).

        Raises:
            TypeError: If ``n`` is not an int (a bool, a float, a string, a tensor).
            ValueError: If ``n`` < 1.
        """
        check_sample_count(type(self).__name__, n)
        z = self.get_prior(prior).sample(n, generator=generator)
        return self.decode(to_module(z, self.decoder))  # the decoder's device and dtype

    @property
    def loss_needs_grad(self) -> bool:
        """Whether ``loss`` takes derivatives itself (then validation runs it with autograd on).

        Methods that estimate J v return ``functional.jacobian.jvp_needs_grad(self.jvp)``.
        """
        return False

    def step_rng(self, batch_idx: int, stage: str) -> Any:
        """Context: the step's draws come from a stream fixed by (noise_seed, step, batch, stage).

        So a step's noise is the same whether the run was resumed or not (see ``seeding``);
        under DDP each process draws its own.
        """
        seed = step_seed(int(self.noise_seed), self.global_step, batch_idx, stage,
                         self.global_rank)
        return seeded(seed, self.device)

    def _check_input(self, x: Tensor) -> None:
        """Refuse what is not a batch (B, C, H, W) of ``image_shape``, in the weights' dtype."""
        weights = next((p.dtype for p in self.encoder.parameters() if p.is_floating_point()), None)
        check_batch(type(self).__name__, x, self.image_shape, weights)

    def log_loss(self, out: LossOutput, stage: str, batch_size: int) -> None:
        """Log ``<stage>/loss`` and each ``<stage>/<term>`` (per step in training, else epoch)."""
        on_step = stage == "train"
        for name, value in {"loss": out.total, **out.terms}.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss", on_step=on_step,
                     on_epoch=not on_step, batch_size=batch_size, sync_dist=not on_step)

    def training_loss(self, x: Tensor) -> LossOutput:
        """Hook: what a training step computes, ``loss(x)``; other players' losses join as terms."""
        return self.loss(x)

    def update(self, out: LossOutput) -> Tensor:
        """Hook: the step's update once its terms are finite; Lightning minimises ``out.total``.

        A method with ``automatic_optimization = False`` steps its optimizers here through
        Lightning's public API and returns the detached total (see ``LatentAdversary``).
        """
        return out.total

    def _compute_loss(self, x: Tensor, batch_idx: int, stage: str) -> LossOutput:
        with self.step_rng(batch_idx, stage):
            if stage == "train":
                return self.training_loss(x)
            if not self.loss_needs_grad:
                return self.loss(x)
            with torch.inference_mode(False), torch.enable_grad():
                out = self.loss(x.clone())
            return LossOutput(out.total.detach(), {k: v.detach() for k, v in out.terms.items()})

    def _shared_step(self, batch: Any, stage: str, batch_idx: int = 0) -> LossOutput | None:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not self._input_checked:
            self._check_input(x)
            check_pixel_range(type(self).__name__, self.decoder, x)
            self._input_checked = True
        out = self._compute_loss(x, batch_idx, stage)
        if stage == "train" and not self.nonfinite_handler(self, {"loss": out.total, **out.terms}):
            return None  # the handler (NonFiniteGuard) skips this batch: no update
        self.log_loss(out, stage, x.shape[0])
        if stage != "train":
            mse = (self.reconstruct(x) - x).pow(2).mean()
            self.log(f"{stage}/rec_mse", mse, batch_size=x.shape[0], sync_dist=True)
        return out

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """One optimisation step (None: the batch was skipped, see ``NonFiniteGuard``)."""
        out = self._shared_step(batch, "train", batch_idx)
        return None if out is None else self.update(out)

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Validation loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "val", batch_idx).total  # type: ignore[union-attr]

    def test_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Test loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "test", batch_idx).total  # type: ignore[union-attr]

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """Codes and reconstructions of a batch (``genae predict``, ``Trainer.predict``).

        Returns:
            ``{"codes": (B, latent_dim), "reconstructions": (B, C, H, W)}``, plus ``"labels"``
            when the batch carries them.
        """
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        z = self.encode(x)
        out = {"codes": z, "reconstructions": self.decode(z)}
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            out["labels"] = batch[1]
        return out

    def configure_optimizers(self) -> Any:
        """The optimizer from the ``optimizer`` factory over all parameters."""
        return self.optimizer_factory(self.parameters())

document_shared_args(GenerativeAutoencoder)  # the base's own Args, as its subclasses'
