"""The thin base every method derives from: backbone + loss + sampling + logging."""

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.backbones import Backbone, ConvBackbone
from genae_lightning.backbones.base import ImageShape, check_image_shape
from genae_lightning.priors import POSTHOC_PRIORS, Prior, StandardNormal, prior_from_state

# Optimizer classes are hyperparameters too (``optimizer=torch.optim.Adam``, or
# ``functools.partial(torch.optim.SGD, lr=0.1)`` from Python): allow them in weights-only
# checkpoint loading. A partial can only wrap globals that are allowed themselves.
torch.serialization.add_safe_globals(
    [getattr(torch.optim, name) for name in torch.optim.__all__
     if isinstance(getattr(torch.optim, name), type)] + [functools.partial]
)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


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
        # Base seed of the per-step noise (see ``step_rng``); saved in checkpoints.
        self.register_buffer("noise_seed", torch.tensor(torch.initial_seed() % 2**62))
        # Non-finite guard: bad batches skipped so far, and how many may be (NonFiniteGuard).
        self.register_buffer("nonfinite_skipped", torch.tensor(0))
        self.skip_nonfinite = 0
        # Saves the weights from before the last update and says where (NonFiniteGuard sets it).
        self.last_good_saver: Callable[[], str] | None = None
        self._last_finite: dict[str, Tensor] = {}
        self._input_checked = False

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
        """Whether ``loss`` takes derivatives itself (then validation runs it with autograd on).

        Methods that estimate J v return ``functional.jacobian.jvp_needs_grad(self.jvp)``.
        """
        return False

    @contextlib.contextmanager
    def step_rng(self, batch_idx: int, stage: str) -> Iterator[None]:
        """Run a step's random draws from a stream fixed by (noise_seed, global_step, batch_idx).

        The global RNG is forked and reseeded, so the noise of a step (J v probes, posterior
        samples, perturbations) is the same whether the run was resumed or not, and the global
        stream outside the step is untouched. Manual-optimisation methods wrap their step in it.
        Under DDP each process (``global_rank``) draws its own noise for its own batch.
        """
        code = {"train": 0, "val": 1, "test": 2}.get(stage, 3)
        seed = (int(self.noise_seed) * 1_000_003 + self.global_step * 1009 + batch_idx * 4 + code
                + self.global_rank * 2**40)
        seed %= 2**63
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.random.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed(seed)
            yield

    def _check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{type(self).__name__} was built for images of shape {self.image_shape}, got a "
                f"batch of shape {tuple(x.shape)}; set model.image_shape to the data's shape "
                "(the CLI links it from the DataModule)"
            )

    def log_loss(self, out: LossOutput, stage: str, batch_size: int) -> None:
        """Log ``<stage>/loss`` and every ``<stage>/<term>`` (per step in training, else per epoch).

        Methods with their own ``training_step`` (manual optimisation) call this too.
        """
        on_step = stage == "train"
        self.log(f"{stage}/loss", out.total, prog_bar=True, on_step=on_step, on_epoch=not on_step,
                 batch_size=batch_size, sync_dist=not on_step)
        for name, value in out.terms.items():
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=not on_step,
                     batch_size=batch_size, sync_dist=not on_step)

    def _check_pixel_range(self, x: Tensor) -> None:
        """Once per run: images must lie in [0, 1] when the decoder ends in a sigmoid."""
        self._input_checked = True
        leaves = [m for m in self.decoder.modules() if not list(m.children())]
        shape_only = (nn.Unflatten, nn.Flatten, nn.Identity, nn.Dropout)
        last = next((m for m in reversed(leaves) if not isinstance(m, shape_only)), None)
        lo, hi = float(x.min()), float(x.max())
        if isinstance(last, nn.Sigmoid) and (lo < 0.0 or hi > 1.0):
            raise ValueError(
                f"{type(self).__name__}'s decoder ends in a sigmoid, so images must lie in [0, 1], "
                f"but a batch spans [{lo:.3g}, {hi:.3g}]; scale the data to [0, 1] (the "
                "DataModules do) or use a backbone with output_activation='identity'"
            )

    def _compute_loss(self, x: Tensor, batch_idx: int, stage: str) -> LossOutput:
        with self.step_rng(batch_idx, stage):
            if stage != "train" and self.loss_needs_grad:
                with torch.inference_mode(False), torch.enable_grad():
                    out = self.loss(x.clone())
                return LossOutput(out.total.detach(), {k: v.detach() for k, v in out.terms.items()})
            return self.loss(x)

    def check_finite(self, out: LossOutput) -> bool:
        """True if every term is finite; else skip (budget left) or stop with an error.

        With a skip budget (``NonFiniteGuard(skip_nonfinite=N)``), a bad batch is skipped (no
        optimizer step) and counted in ``train/nonfinite_skipped``; past the budget,
        ``NonFiniteLossError`` names the term, the step and the last finite values. With the
        ``NonFiniteGuard`` callback (``genae fit`` adds it), the weights from before the update
        that led to the bad loss are saved first as ``nonfinite-step=<k>.ckpt``.
        """
        values = {"loss": out.total, **out.terms}
        if bool(torch.stack([v.detach().float() for v in values.values()]).isfinite().all()):
            self._last_finite = {k: v.detach() for k, v in values.items()}
            return True
        bad = [k for k, v in values.items() if not torch.isfinite(v).all()]
        if int(self.nonfinite_skipped) < self.skip_nonfinite:
            self.nonfinite_skipped += 1
            self.log("train/nonfinite_skipped", self.nonfinite_skipped.float(), on_step=True)
            return False
        if self.last_good_saver is not None:
            saved = self.last_good_saver()
        else:
            saved = ("No checkpoint was written: add the NonFiniteGuard callback (genae fit adds "
                     "it) to keep the weights from before the update that led here.")
        last = {k: round(float(v), 6) for k, v in self._last_finite.items()}
        raise NonFiniteLossError(
            f"{type(self).__name__}: non-finite {', '.join(bad)} at step {self.global_step} "
            f"(last finite values: {last or 'none yet'}). {saved} Lower the learning rate, check "
            "the data, or allow skipping a few bad batches with the "
            "NonFiniteGuard(skip_nonfinite=N) callback."
        )

    def _shared_step(self, batch: Any, stage: str, batch_idx: int = 0) -> Tensor | None:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not self._input_checked:
            self._check_input(x)
            self._check_pixel_range(x)
        out = self._compute_loss(x, batch_idx, stage)
        if stage == "train" and not self.check_finite(out):
            return None  # Lightning skips the optimizer step
        batch_size = x.shape[0]
        self.log_loss(out, stage, batch_size)
        if stage != "train":
            mse = (self.reconstruct(x) - x).pow(2).mean()
            self.log(f"{stage}/rec_mse", mse, batch_size=batch_size, sync_dist=True)
        return out.total

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """One optimisation step's loss (None skips the step, see ``check_finite``)."""
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Validation loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Test loss and per-pixel reconstruction MSE."""
        return self._shared_step(batch, "test", batch_idx)

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
        record = getattr(self, "batchnorm_check", None)
        if record is not None:  # FitLatentPrior's BatchNorm check of these weights
            checkpoint["genae"]["batchnorm"] = dict(record)

    def on_fit_start(self) -> None:
        """Forget an earlier BatchNorm check: further training makes it stale."""
        self.batchnorm_check = None

    def check_image_shape(self, checkpoint: dict[str, Any], where: Any = None) -> None:
        """Refuse a checkpoint trained on images of another shape, naming both shapes."""
        saved = checkpoint.get("hyper_parameters", {}).get("image_shape")
        if saved is not None and tuple(int(s) for s in saved) != tuple(self.image_shape):
            name = "the checkpoint" if where is None else f"checkpoint {str(where)!r}"
            raise ValueError(
                f"{name} holds {type(self).__name__} weights for images of shape "
                f"{tuple(int(s) for s in saved)}, but this model (and its data) has image_shape "
                f"{tuple(self.image_shape)}: run it on the data it was trained on (the run's "
                "config.yaml names it, e.g. --data MNIST), or fit a new model on this data "
                "without --ckpt_path"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the image shape, then rebuild the fitted post-hoc priors.

        Runs before the state dict is loaded, so weights of another image shape give a clear
        error instead of a size mismatch of some layer.
        """
        trainer = self._trainer
        self.check_image_shape(checkpoint, getattr(trainer, "ckpt_path", None) if trainer else None)
        state = checkpoint.get("state_dict", {})
        self.batchnorm_check = checkpoint.get("genae", {}).get("batchnorm")
        for name in checkpoint.get("genae", {}).get("posthoc_priors", []):
            prefix = f"posthoc_priors.{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            self.posthoc_priors[name] = prior_from_state(name, sub)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> "GenerativeAutoencoder":
        """Lightning's ``load_from_checkpoint``, reading the file weights-only.

        The file is read with :func:`genae_lightning.checkpoint.read_checkpoint`, which cannot
        run code and says which file is corrupt or unsafe. Keyword arguments override saved
        hyperparameters, as in Lightning.

        Args:
            checkpoint_path: The checkpoint file (or an open binary file object).
            map_location: Where to put the tensors (Lightning's default: CUDA tensors go to the
                CPU when no GPU is present).
            hparams_file: A YAML file whose hyperparameters replace the saved ones.
            strict: Whether the state dict must match the model's keys exactly.
            weights_only: Must be None or True: genae-lightning never unpickles arbitrary objects.
            **kwargs: Hyperparameters that replace the saved ones.
        """
        from lightning.pytorch.core.saving import _default_map_location, load_hparams_from_yaml

        from genae_lightning.checkpoint import read_checkpoint

        if weights_only is False:
            raise ValueError(
                "genae-lightning loads checkpoints with weights_only=True only (a pickle can run "
                "code); leave weights_only unset. See 'Checkpoints are loaded safely' in "
                "docs/errors.md for a file you trust that needs more"
            )
        checkpoint = read_checkpoint(checkpoint_path, map_location or _default_map_location)
        if hparams_file is not None:
            if Path(hparams_file).suffix.lower() not in (".yaml", ".yml"):
                raise ValueError(f"hparams_file must be a .yaml or .yml file, got {hparams_file!r}")
            checkpoint["hyper_parameters"] = load_hparams_from_yaml(hparams_file)
        return cls.from_checkpoint_dict(checkpoint, strict=strict, **kwargs)

    @classmethod
    def from_checkpoint_dict(
        cls, checkpoint: dict[str, Any], strict: bool | None = None, **kwargs: Any
    ) -> "GenerativeAutoencoder":
        """Build the method from a checkpoint dictionary already read (hyperparameters, weights).

        Args:
            checkpoint: What :func:`genae_lightning.checkpoint.read_checkpoint` returned.
            strict: Whether the state dict must match the model's keys exactly.
            **kwargs: Hyperparameters that replace the saved ones.
        """
        from lightning.pytorch.core.saving import _load_state

        model = _load_state(cls, checkpoint, strict=strict, **kwargs)
        device = next((t.device for t in checkpoint.get("state_dict", {}).values()
                       if isinstance(t, Tensor)), None)
        return model if device is None else model.to(device)


class GaussianPosteriorAutoencoder(GenerativeAutoencoder):
    """A method whose encoder outputs a diagonal Gaussian q(z|x) (VAE, dpVAE, VPGA).

    The encoder has ``2 * latent_dim`` outputs (pass ``encoder_features=2 * latent_dim``): the
    mean, then the log-variance. ``encode`` is the posterior mean.
    """

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, d)."""
        self._check_input(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean."""
        return self.posterior(x)[0]
