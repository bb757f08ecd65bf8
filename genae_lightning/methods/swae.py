"""Symmetric Wasserstein autoencoders (SWAE) with a learnable pseudo-input mixture prior."""

import copy
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.backbones import Backbone, ConvBackbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import reparameterize
from genae_lightning.functional import sum_squared_error as sse
from genae_lightning.priors import PseudoInputMixture, PseudoInputs
from genae_lightning.priors.pseudo_inputs import PseudoInputHooks


class SWAE(PseudoInputHooks, GenerativeAutoencoder):
    """SWAE, objective (10) with the squared L2 cost (Algorithm 1 of the paper).

    Per example, with z_e = E(x), u_n the pseudo-input nearest to x, and z_d drawn
    (reparameterised) from the conditional prior p_gamma(z | u_n)::

        beta ||x - D(z_d)||^2 + (1 - beta) ||x - D(z_e)||^2 + alpha ||z_e - z_d||^2

    averaged over the batch (the x-loss, the reconstruction loss and the z-loss, logged as
    ``x_loss``, ``rec`` and ``z_loss``). E and D are deterministic. The encoder, decoder,
    conditional-prior network and pseudo-inputs are all trained on it.

    The conditional prior is N(mean(u), diag exp(logvar(u))) with (mean, logvar) from a network
    gamma applied to the pseudo-input. The paper's main text says only that it is a deep network
    (the architecture is in its supplement); here it is a second network with the encoder's
    architecture, ``backbone.encoder(image_shape, 2 * latent_dim)``, as VampPrior (on whose
    networks the paper builds SWAE) maps pseudo-inputs through an encoder. The marginal prior is
    the mixture 1/K sum_k p_gamma(z | u_k) (``self.prior``, with ``log_prob``); sampling picks k
    uniformly, draws z ~ p_gamma(z | u_k) and decodes it. The K pseudo-inputs are initialised from
    K distinct training samples when fitting starts (seeded; never again on resume).

    Args:
        latent_dim: Latent dimension (the paper: 8, 40, 80; 512 on CIFAR10-sub).
        beta: Trade-off in [0, 1] between the x-loss (beta) and reconstruction (1 - beta); the
            paper reports beta in {0, 0.5, 1}.
        alpha: Weight (>= 0) of the z-loss (the paper: 1).
        num_pseudo_inputs: Number K of pseudo-inputs, at most the training-set size (the paper:
            4000 on MNIST, Fashion-MNIST and CIFAR10-sub, 500 on Coil20, set in the configs; the
            small default keeps quick trials and tests light).
        nearest: How the nearest pseudo-input is found: ``"l2"`` in data space (the paper's
            choice), ``"cosine"`` in data space, or ``"latent"``: L2 between E(x) and E(u_k)
            (the paper's fast approximation; encodes all K pseudo-inputs every step).
        pseudo_input_seed: Seed of the draw of the initial pseudo-inputs.
        backbone: Encoder/decoder factory (also builds the conditional-prior network);
            ``ConvBackbone()`` by default.
        encoder: Your own encoder module instead of ``backbone``'s (with ``decoder``; see
            docs/backbones.md). The conditional-prior network is then a copy of it (its own
            weights) followed by a linear layer to ``2 * latent_dim``.
        optimizer: Optimizer factory; Adam(lr=1e-3) by default (the paper's setting).

    Reference:
        Sun & Guo, "Symmetric Wasserstein Autoencoders", UAI 2021 (arXiv:2106.13024).
    """

    paper = "Sun & Guo, *Symmetric Wasserstein Autoencoders*, 2021"

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 8,
        beta: float = 0.5,
        alpha: float = 1.0,
        num_pseudo_inputs: int = 16,
        nearest: Literal["l2", "cosine", "latent"] = "l2",
        pseudo_input_seed: int = 0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if nearest not in ("l2", "cosine", "latent"):
            raise ValueError(f"nearest must be 'l2', 'cosine' or 'latent', got {nearest!r}")
        if num_pseudo_inputs < 1:
            raise ValueError(f"num_pseudo_inputs must be >= 1, got {num_pseudo_inputs}")
        factory = backbone if backbone is not None or encoder is not None else ConvBackbone()
        super().__init__(image_shape, latent_dim, factory, optimizer,
                         encoder=encoder, decoder=decoder)
        if encoder is None:
            prior_net = factory.encoder(self.image_shape, 2 * latent_dim)  # type: ignore[union-attr]
        else:  # your encoder's architecture (a copy, its own weights), then (mean, logvar)
            prior_net = nn.Sequential(copy.deepcopy(self.encoder),
                                      nn.Linear(latent_dim, 2 * latent_dim))
        pseudo_inputs = PseudoInputs(num_pseudo_inputs, self.image_shape)
        self.prior: PseudoInputMixture = PseudoInputMixture(pseudo_inputs, prior_net, latent_dim)
        self.beta, self.alpha, self.nearest = beta, alpha, nearest
        self.pseudo_input_seed = pseudo_input_seed
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Objective (10) with one z_d per example from the nearest pseudo-input's prior."""
        z_e = self.encode(x)  # (B, d)
        index = self.pseudo_inputs.nearest(x, self.nearest, encoder=self.encoder)  # (B,)
        z_d = reparameterize(*self.prior.conditional(index))  # (B, d)
        x_loss = sse(x, self.decode(z_d)).mean()
        rec = sse(x, self.decode(z_e)).mean()
        z_loss = sse(z_e, z_d).mean()
        total = self.beta * x_loss + (1.0 - self.beta) * rec + self.alpha * z_loss
        return LossOutput(total, {"x_loss": x_loss, "rec": rec, "z_loss": z_loss})
