"""Regularised autoencoder baselines of the InjFlow paper: AE+L2, AE+SN and the contractive AE."""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import estimate_jacobian_sq_norm, squared_l2_norm, sum_squared_error
from genae_lightning.functional.jacobian import JvpMode, check_jvp_mode, jvp_needs_grad
from genae_lightning.methods.ae import AE


class AEL2(AE):
    """Autoencoder with an l2 penalty on the decoder's parameters (weight decay), baseline (ii).

    Loss per batch: mean_x ||x - g(h(x))||^2 + l2_weight * ||theta_g||^2, where theta_g are all
    decoder parameters. The penalty is an explicit, logged term (``l2``), not the optimizer's
    weight decay.

    Args:
        l2_weight: Weight of ||theta_g||^2 (>= 0); the paper searches {0.001, 0.01, 0.1, 0.5, 1}.

    Reference:
        Baseline (ii) of Kumar, Poole & Murphy, "Regularized Autoencoders via Relaxed Injective
        Probability Flow", AISTATS 2020, section 4.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        l2_weight: float = 0.01,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if l2_weight < 0:
            raise ValueError(f"l2_weight must be >= 0, got {l2_weight}")
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.l2_weight = l2_weight
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Reconstruction error plus the weighted squared l2 norm of the decoder's parameters."""
        rec = super().loss(x).total
        l2 = squared_l2_norm(self.decoder.parameters())
        return LossOutput(rec + self.l2_weight * l2, {"rec": rec, "l2": l2})


def spectral_normalize(module: nn.Module, n_power_iterations: int = 1) -> int:
    """Put torch's spectral-norm parametrization on every linear and (transposed) conv layer.

    Each weight W is replaced by W / sigma(W), sigma estimated by power iteration on W reshaped
    to a matrix (Miyato et al., 2018); transposed convolutions are normalised over their output
    channels (torch picks ``dim=1``). Returns how many layers were normalised.
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    for layer in layers:
        spectral_norm(layer, n_power_iterations=n_power_iterations)
    return len(layers)


class AESN(AE):
    """Autoencoder whose decoder layers are all spectrally normalised, baseline (iii).

    Every linear and convolutional layer of the decoder has its top singular value normalised to
    1 (torch's ``spectral_norm`` parametrization); the loss is the plain AE's.

    Args:
        n_power_iterations: Power iterations per training forward pass for sigma(W) (>= 1).

    Reference:
        Baseline (iii) of Kumar, Poole & Murphy, "Regularized Autoencoders via Relaxed Injective
        Probability Flow", AISTATS 2020, section 4; Miyato et al., "Spectral Normalization
        for Generative Adversarial Networks", ICLR 2018.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        n_power_iterations: int = 1,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        if spectral_normalize(self.decoder, n_power_iterations) == 0:
            raise ValueError("AESN found no linear or convolutional decoder layer to normalise")
        self.save_hyperparameters()


class CAE(GenerativeAutoencoder):
    """Contractive autoencoder: penalise ||J_h(x)||_F^2, the encoder's Jacobian, baseline (iv).

    Loss per batch: mean_x ||x - g(h(x))||^2 + jac_weight * ||J_h(x) v||^2 with one probe
    v ~ N(0, I_D) per example (Hutchinson's estimator, as for InjFlow's decoder Jacobian).

    Args:
        jac_weight: Weight of the Jacobian penalty (>= 0); the paper searches
            {0.001, 0.01, 0.1, 0.5, 1, 10}.
        jvp: ``"forward"`` (forward-mode AD), ``"finite_difference"`` or ``"reverse"``
            (||J^T u||^2, u ~ N(0, I_d)); see ``functional.jacobian``.
        fd_eps: Step of the finite-difference estimator.

    Reference:
        Rifai et al., "Contractive Auto-Encoders", ICML 2011; baseline (iv) of Kumar, Poole &
        Murphy, "Regularized Autoencoders via Relaxed Injective Probability Flow", AISTATS 2020.
    """

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        jac_weight: float = 0.1,
        jvp: JvpMode = "forward",
        fd_eps: float = 0.01,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        if jac_weight < 0:
            raise ValueError(f"jac_weight must be >= 0, got {jac_weight}")
        check_jvp_mode(jvp, fd_eps)
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.jac_weight, self.jvp, self.fd_eps = jac_weight, jvp, fd_eps
        self.save_hyperparameters()

    @property
    def loss_needs_grad(self) -> bool:
        """Whether the J v estimator needs autograd in validation (``jvp_needs_grad``)."""
        return jvp_needs_grad(self.jvp)

    def loss(self, x: Tensor) -> LossOutput:
        """Reconstruction error plus the weighted one-sample estimate of ||J_h(x)||_F^2."""
        self._check_input(x)
        est = estimate_jacobian_sq_norm(self.encoder, x, self.jvp, self.fd_eps)  # output: (B, d)
        rec = sum_squared_error(x.float(), self.decode(est.output)).mean()
        jac = est.sq_norm.mean()
        return LossOutput(rec + self.jac_weight * jac, {"rec": rec, "jac": jac})
