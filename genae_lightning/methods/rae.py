"""Regularised autoencoders (RAE-L2, RAE-GP) of Ghosh et al."""

from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import estimate_jacobian_sq_norm, squared_l2_norm, sum_squared_error
from genae_lightning.functional.jacobian import JvpMode, check_jvp_mode, jvp_needs_grad


class RAE(GenerativeAutoencoder):
    """Deterministic regularised autoencoder: L_REC + beta L_Z + lam L_REG, averaged over a batch.

    With z = h(x): L_REC = ||x - g(z)||^2 (summed over pixels), L_Z = ||z||^2 / 2, and L_REG is

    * ``"l2"`` (RAE-L2): ||theta_g||^2, weight decay on all decoder parameters, as a logged term;
    * ``"gp"`` (RAE-GP): ||J_g(z)||_F^2, the gradient penalty on the decoder, estimated with one
      probe per example as in InjFlow (``functional.jacobian``).

    Samples come from post-hoc priors fitted to the codes (``FitLatentPrior``).

    Args:
        regularizer: ``"l2"`` (RAE-L2) or ``"gp"`` (RAE-GP).
        beta: Weight of the embedding penalty ||z||^2 / 2 (>= 0).
        lam: Weight of the decoder regulariser L_REG (>= 0).
        jvp: How the RAE-GP estimator gets J_g v: ``"forward"``, ``"finite_difference"`` or
            ``"reverse"``; unused by RAE-L2.
        fd_eps: Step of the finite-difference estimator.

    Reference:
        Ghosh, Sajjadi, Vergari, Black & Schoelkopf, "From Variational to Deterministic
        Autoencoders", ICLR 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        regularizer: Literal["l2", "gp"] = "l2",
        beta: float = 0.01,
        lam: float = 1e-3,
        jvp: JvpMode = "forward",
        fd_eps: float = 0.01,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if regularizer not in ("l2", "gp"):
            raise ValueError(
                f"regularizer must be 'l2' (RAE-L2) or 'gp' (RAE-GP), got {regularizer!r}"
            )
        if beta < 0 or lam < 0:
            raise ValueError(f"beta and lam must be >= 0, got beta={beta}, lam={lam}")
        check_jvp_mode(jvp, fd_eps)
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.regularizer, self.beta, self.lam = regularizer, beta, lam
        self.jvp, self.fd_eps = jvp, fd_eps
        self.save_hyperparameters()

    @property
    def loss_needs_grad(self) -> bool:
        """Whether RAE-GP's J v estimator needs autograd in validation (``jvp_needs_grad``)."""
        return self.regularizer == "gp" and jvp_needs_grad(self.jvp)

    def loss(self, x: Tensor) -> LossOutput:
        """Reconstruction + beta * embedding penalty + lam * decoder regulariser."""
        z = self.encode(x)  # (B, d)
        if self.regularizer == "gp":
            est = estimate_jacobian_sq_norm(self.decoder, z, self.jvp, self.fd_eps)
            x_hat, reg = est.output, est.sq_norm.mean()
        else:
            x_hat, reg = self.decode(z), squared_l2_norm(self.decoder.parameters())
        rec = sum_squared_error(x.float(), x_hat.float()).mean()
        emb = 0.5 * z.float().pow(2).sum(dim=1).mean()
        total = rec + self.beta * emb + self.lam * reg
        return LossOutput(total, {"rec": rec, "emb": emb, self.regularizer: reg})
