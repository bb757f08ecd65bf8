"""Learnable pseudo-inputs u_1..u_K in data space and the mixture prior they define.

Shared by SWAE (mixture of conditional priors p(z | u_k)) and the VampPrior VAE (mixture of
posteriors q(z | u_k)): both priors are ``1/K sum_k N(z; mean(u_k), diag exp(logvar(u_k)))``
for a network whose ``2 * dim`` outputs are the mean and log-variance.

API:
    ``PseudoInputs(num, image_shape)`` (an ``nn.Module``):
        * ``u``: learnable ``nn.Parameter`` of shape (K, C, H, W); uniform noise in [0, 1) until
          initialised.
        * ``initialized``: boolean buffer, saved in checkpoints, so that a resumed or reloaded
          model is never re-initialised.
        * ``init_from_data(x)``: copy K images (K, C, H, W) into ``u``.
        * ``init_from_dataset(dataset, seed)``: K distinct samples drawn with a seeded generator
          from a dataset of images or of ``(image, label)`` pairs; ``ValueError`` if K exceeds
          its size.
        * ``init_from_trainer(trainer, seed, required)``: the same from the trainer's training
          set (``trainer.datamodule.train_dataset``, else the training dataloader's dataset); a
          no-op once initialised. Call it from the method's ``on_fit_start`` with
          ``required=False`` (before the sanity check, when a DataModule is used) and from
          ``on_train_start`` (when the data came as dataloaders).
        * ``nearest(x, metric, encoder)``: index (B,) of the pseudo-input nearest to each image,
          by L2 or cosine in data space, or by L2 between ``encoder(x)`` and ``encoder(u_k)``.
    ``PseudoInputMixture(pseudo_inputs, net, dim)`` (a :class:`Prior`): ``conditional(index)``,
    ``log_prob(z)`` and ``sample(n)``.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genae_lightning.backbones.base import ImageShape, check_image_shape
from genae_lightning.functional.mixture import diag_gaussian_mixture_log_prob
from genae_lightning.priors.base import Prior

NearestMetric = Literal["l2", "cosine", "latent"]


@contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Put an ``nn.Module`` in eval mode for the block (BatchNorm statistics stay untouched)."""
    was_training = getattr(module, "training", None)
    if isinstance(module, nn.Module):
        module.eval()
    try:
        yield
    finally:
        if isinstance(module, nn.Module):
            module.train(bool(was_training))


class PseudoInputs(nn.Module):
    """K learnable pseudo-inputs of image shape, initialised from training samples.

    Args:
        num: Number K of pseudo-inputs (>= 1).
        image_shape: (C, H, W) of one pseudo-input (the data's image shape).
    """

    def __init__(self, num: int, image_shape: ImageShape) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"the number of pseudo-inputs must be >= 1, got {num}")
        self.image_shape = check_image_shape(image_shape)
        self.u = nn.Parameter(torch.rand(num, *self.image_shape))  # (K, C, H, W)
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def num(self) -> int:
        """Number K of pseudo-inputs."""
        return self.u.shape[0]

    @property
    def is_initialized(self) -> bool:
        """Whether ``u`` holds training samples (or a checkpoint's trained values)."""
        return bool(self.initialized)

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """Copy K images of shape (K, C, H, W) into the pseudo-inputs."""
        if tuple(x.shape) != tuple(self.u.shape):
            raise ValueError(
                f"need {self.num} images of shape {self.image_shape} to initialise the "
                f"pseudo-inputs, got a tensor of shape {tuple(x.shape)}"
            )
        self.u.copy_(x.to(self.u))
        self.initialized.fill_(True)

    def init_from_dataset(self, dataset: Any, seed: int = 0) -> None:
        """Initialise from K distinct samples of ``dataset``, drawn with a seeded generator.

        Args:
            dataset: Map-style dataset of images or of ``(image, label, ...)`` tuples.
            seed: Seed of the draw; the same seed picks the same samples.
        """
        n = len(dataset)
        if self.num > n:
            raise ValueError(
                f"{self.num} pseudo-inputs are initialised from distinct training samples, but "
                f"the training set has only {n}; pass num_pseudo_inputs <= {n}"
            )
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: self.num]
        items = [dataset[int(i)] for i in index]
        images = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
        self.init_from_data(torch.stack([torch.as_tensor(im) for im in images]).float())

    def init_from_trainer(self, trainer: L.Trainer, seed: int = 0, required: bool = True) -> bool:
        """Initialise from the trainer's training set unless already initialised.

        Args:
            trainer: The fitting trainer.
            seed: Seed of the draw.
            required: Raise ``RuntimeError`` when no training set can be found yet.

        Returns:
            Whether the pseudo-inputs are initialised afterwards.
        """
        if self.is_initialized:
            return True
        dataset = getattr(trainer.datamodule, "train_dataset", None)
        if dataset is None:
            dataset = getattr(trainer.train_dataloader, "dataset", None)
        if dataset is None:
            if required:
                raise RuntimeError(
                    "cannot initialise the pseudo-inputs: the trainer has neither a DataModule "
                    "with a train_dataset nor a single training DataLoader; call "
                    "init_from_dataset(...) or init_from_data(...) before fitting"
                )
            return False
        self.init_from_dataset(dataset, seed)
        return True

    @torch.no_grad()
    def nearest(
        self,
        x: Tensor,
        metric: NearestMetric = "l2",
        encoder: Callable[[Tensor], Tensor] | None = None,
        chunk_size: int = 1024,
    ) -> Tensor:
        """Index of the nearest pseudo-input of each image, vectorised (no gradient).

        Args:
            x: Images, shape (B, C, H, W).
            metric: ``"l2"`` (Euclidean in data space), ``"cosine"`` (largest cosine similarity
                in data space) or ``"latent"`` (Euclidean between ``encoder(x)`` and
                ``encoder(u_k)``; the SWAE paper's fast approximation).
            encoder: Map from images to (B, d) codes; required by ``"latent"``. An ``nn.Module``
                is run in eval mode, so the search leaves BatchNorm statistics untouched.
            chunk_size: Pseudo-inputs encoded per forward pass (``"latent"`` only).

        Returns:
            LongTensor of shape (B,) with values in [0, K).
        """
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"pseudo-inputs have shape {self.image_shape}, got images of shape "
                f"{tuple(x.shape)}"
            )
        if metric == "latent":
            if encoder is None:
                raise ValueError("metric='latent' needs the encoder that maps images to codes")
            with _eval_mode(encoder):
                a = encoder(x).flatten(1)  # (B, d)
                b = torch.cat([encoder(u).flatten(1) for u in self.u.split(chunk_size)])  # (K, d)
        elif metric in ("l2", "cosine"):
            a, b = x.flatten(1), self.u.flatten(1)  # (B, D), (K, D)
        else:
            raise ValueError(f"metric must be 'l2', 'cosine' or 'latent', got {metric!r}")
        a, b = a.float(), b.float().to(a.device)
        if metric == "cosine":
            return (F.normalize(a, dim=1) @ F.normalize(b, dim=1).T).argmax(dim=1)
        return torch.cdist(a, b).argmin(dim=1)


class PseudoInputMixture(Prior):
    """p(z) = 1/K sum_k N(z; mean(u_k), diag exp(logvar(u_k))), (mean, logvar) = net(u_k).

    Args:
        pseudo_inputs: The K pseudo-inputs (a submodule: trained with the prior).
        net: Map from (B, C, H, W) pseudo-inputs to (B, 2 * dim) means and log-variances (an
            encoder-shaped network; the VampPrior passes the VAE's own encoder).
        dim: Latent dimension.
        chunk_size: Pseudo-inputs per forward pass of ``net`` when all K are needed.
    """

    def __init__(
        self, pseudo_inputs: PseudoInputs, net: nn.Module, dim: int, chunk_size: int = 512
    ) -> None:
        super().__init__(dim)
        self.pseudo_inputs = pseudo_inputs
        self.net = net
        self.chunk_size = chunk_size

    @property
    def num_components(self) -> int:
        """Number K of mixture components (pseudo-inputs)."""
        return self.pseudo_inputs.num

    def conditional(self, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Means and log-variances (each (B, dim)) of the components ``index`` (all when None)."""
        u = self.pseudo_inputs.u
        if index is None:
            out = torch.cat([self.net(chunk) for chunk in u.split(self.chunk_size)])
        else:
            out = self.net(u[index])
        if out.dim() != 2 or out.shape[1] != 2 * self.dim:
            raise ValueError(
                f"the prior network must output (B, {2 * self.dim}) means and log-variances, "
                f"got {tuple(out.shape)}"
            )
        mean, logvar = out.chunk(2, dim=1)
        return mean, logvar

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of the mixture, shape (B,), computed over all K components."""
        self._check(z)
        mean, logvar = self.conditional()  # (K, d) each
        step = max(1, 2**22 // (self.num_components * self.dim))  # bounds the (b, K, d) buffer
        return torch.cat([
            diag_gaussian_mixture_log_prob(chunk, mean, logvar) for chunk in z.split(step)
        ])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Pick n components uniformly, then z ~ N(mean(u_k), diag exp(logvar(u_k)))."""
        device = generator.device if generator is not None else self.device
        index = torch.randint(self.num_components, (n,), generator=generator, device=device)
        mean, logvar = self.conditional(index.to(self.device))
        return mean + torch.exp(0.5 * logvar) * self._randn(n, self.dim, generator=generator)


class PseudoInputHooks:
    """Mixin drawing a LightningModule's initial pseudo-inputs from the training set, once.

    For methods whose ``prior`` is a :class:`PseudoInputMixture` (SWAE, VampPrior).
    The module sets ``self.prior`` and ``self.pseudo_input_seed``; put the mixin first in the
    bases (``class SWAE(PseudoInputHooks, GenerativeAutoencoder)``) so its hooks are used.
    """

    prior: PseudoInputMixture
    pseudo_input_seed: int
    trainer: Any

    @property
    def pseudo_inputs(self) -> PseudoInputs:
        """The K learnable pseudo-inputs, (K, C, H, W) in ``.u``."""
        return self.prior.pseudo_inputs

    def on_fit_start(self) -> None:
        """Draw the pseudo-inputs from the DataModule's training set (once; kept on resume)."""
        self.pseudo_inputs.init_from_trainer(self.trainer, self.pseudo_input_seed, required=False)

    def on_train_start(self) -> None:
        """Initialise from the training dataloader when no DataModule provided the data."""
        self.pseudo_inputs.init_from_trainer(self.trainer, self.pseudo_input_seed, required=True)
