"""Perceptual generative autoencoders: LPGA (maximum likelihood) and VPGA (VAE-based).

Notation of the paper: encoder f (parameters phi), decoder g (theta), h = f o g, prior N(0, I).
Every term trains exactly the parameters the paper assigns to it, in one backward pass:

* L_r (1) = 1/2 ||g(f(x)) - x||^2 trains phi and theta.
* L_lr,N (2) = 1/2 ||f(g(z)) - z||^2, z ~ N(0, I), and L_lr,H (3), z = f(x) with its gradient
  stopped, train phi only: the decoder's output is detached before it enters f.
* L_nll^phi (5) = 1/2 ||f(x)||^2 trains phi only (it does not involve g).
* L_nll^theta (6) trains theta only: h(z) and h(z + delta) are computed through f with phi
  detached (``torch.func.functional_call``), so gradients reach g through f but not phi.

BatchNorm running statistics (eval mode uses them). A step passes several batches through each
network, from different distributions (the paper, section 3). Each distribution that the
objective feeds a network updates its statistics once per step:

* encoder: the data x (L_r, (5)), the generated images g(z), z ~ N(0, I) ((2)), and the
  reconstructions g(f(x)) ((3); also what f sees inside h in (6) and (10));
* decoder: the codes f(x) (L_r) and the prior samples z ~ N(0, I) ((2)).

The pass of h on the pair (f(x), f(x) + delta) of (6) (VPGA: (f(x), z ~ q(z|x)) of (10)) runs
with both networks' statistics frozen (``_frozen_h``): it re-evaluates codes already counted,
and its perturbed half is a finite-difference device, like the perturbed pass of
``jvp="finite_difference"``. It still normalises with batch statistics, as in training.
"""

import math
from collections.abc import Callable

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from genae_lightning.autoencoder.base import GenerativeAutoencoder, LossOutput
from genae_lightning.autoencoder.gaussian import GaussianPosteriorAutoencoder
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import gaussian_kl_standard, gaussian_nll, reparameterize
from genae_lightning.functional import sum_squared_error as sse
from genae_lightning.functional.batchnorm import frozen_batchnorm_stats
from genae_lightning.functional.pga import log_det_jacobian_estimate, sphere_perturbation
from genae_lightning.functional.precision import at_least_float32


def _frozen_h(encoder: nn.Module, decoder: nn.Module, z: Tensor, dim: int) -> Tensor:
    """h(z) = f(g(z))[:, :dim] with f's parameters detached: gradients reach theta, not phi.

    Computed in float32 with autocast off: (6) takes the difference h(z + delta) - h(z) of a
    step of size epsilon, which bfloat16/float16 rounding would swamp. BatchNorm running
    statistics stay as they are (module docstring): z holds codes f(x) already counted this step.
    """
    params = {name: p.detach() for name, p in encoder.named_parameters()}
    with torch.autocast(device_type=z.device.type, enabled=False), \
            frozen_batchnorm_stats(encoder, decoder):
        (z,) = at_least_float32(z)  # float64 (a model in float64) stays float64
        return torch.func.functional_call(encoder, params, (decoder(z),))[:, :dim]


def _latent_reconstruction(
    f: Callable[[Tensor], Tensor], decoder: nn.Module, z: Tensor, x_hat: Tensor
) -> tuple[Tensor, Tensor]:
    """L_lr,N (2) and L_lr,H (3), batch means; both train f's parameters only."""
    z_n = torch.randn_like(z)  # (B, H), z ~ N(0, I)
    with torch.no_grad():
        x_n = decoder(z_n)
    lr_n = 0.5 * sse(z_n, f(x_n)).mean()
    lr_h = 0.5 * sse(z.detach(), f(x_hat.detach())).mean()  # x_hat = g(z), z = f(x) stopped
    return lr_n, lr_h


def _check(warmup_steps: int, **weights: float) -> None:
    for name, value in weights.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")


class LPGA(GenerativeAutoencoder):
    """Maximum-likelihood PGA, loss (7).

    L = L_r + alpha L_lr,N + beta L_lr,H + gamma (L_nll^phi + L_nll^theta).

    L_nll^theta (6) = (H/2) log(||h(z + delta) - h(z)||^2 / epsilon^2) with z = f(x) stopped and
    delta uniform on the sphere of radius epsilon; h(z) and h(z + delta) share one decoder and
    encoder pass, so BatchNorm normalises both alike. Losses are sums over pixels (latent
    dimensions) and means over the batch, as written in the paper; see docs/methods/pga.md for
    the authors' released settings converted to this scale.

    Args:
        latent_dim: Latent dimension H (the authors' MNIST setting: 12).
        alpha: Weight of L_lr,N (2).
        beta: Weight of L_lr,H (3).
        gamma: Weight of L_nll^phi + L_nll^theta, (5) + (6).
        epsilon: Radius of the sphere S(epsilon) in (6), times sqrt(latent_dim) when
            ``scale_epsilon`` (the authors: 0.01 sqrt(H)).
        scale_epsilon: Multiply ``epsilon`` by sqrt(latent_dim).
        warmup_steps: Optimizer steps trained on L_r alone before the regularisers switch on
            (the authors: 3000); validation always reports the full loss.
        backbone: Encoder/decoder factory; ``ConvBackbone()`` by default (``DCGANBackbone`` is
            the paper's).
        optimizer: Optimizer factory; Adam(lr=1e-3) by default (the paper: SGD, momentum 0.9).

    Reference:
        Zhang, Zhang, Li, Bengio & Paull, "Perceptual Generative Autoencoders", ICML 2020
        (arXiv:1906.10335).
    """

    paper = "Zhang, Zhang, Li, Bengio & Paull, *Perceptual Generative Autoencoders*, ICML 2020"

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 12,
        alpha: float = 0.98,
        beta: float = 0.0,
        gamma: float = 0.1225,
        epsilon: float = 0.01,
        scale_epsilon: bool = True,
        warmup_steps: int = 0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        _check(warmup_steps, alpha=alpha, beta=beta, gamma=gamma)
        if epsilon <= 0:
            raise ValueError(f"epsilon (sphere radius) must be > 0, got {epsilon}")
        super().__init__(image_shape, latent_dim, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.radius = epsilon * math.sqrt(latent_dim) if scale_epsilon else epsilon
        self.warmup_steps = warmup_steps
        self.save_hyperparameters()

    def loss(self, x: Tensor) -> LossOutput:
        """Loss (7) with one z ~ N(0, I) and one delta per example; L_r alone during warm-up."""
        z = self.encode(x)  # (B, H)
        x_hat = self.decode(z)
        rec = 0.5 * sse(x, x_hat).mean()
        if self.training and self.global_step < self.warmup_steps:
            return LossOutput(rec, {"rec": rec})
        lr_n, lr_h = _latent_reconstruction(self.encoder, self.decoder, z, x_hat)
        nll_enc = 0.5 * z.pow(2).sum(dim=1).mean()
        z_s = z.detach()
        z_pair = torch.cat([z_s, z_s + sphere_perturbation(z_s, self.radius)])  # (2B, H)
        h_z, h_z_delta = _frozen_h(self.encoder, self.decoder, z_pair, self.latent_dim).chunk(2)
        nll_dec = log_det_jacobian_estimate(h_z, h_z_delta, self.radius).mean()
        total = rec + self.alpha * lr_n + self.beta * lr_h + self.gamma * (nll_enc + nll_dec)
        terms = {"rec": rec, "lr_n": lr_n, "lr_h": lr_h, "nll_enc": nll_enc, "nll_dec": nll_dec}
        return LossOutput(total, terms)


class VPGA(GaussianPosteriorAutoencoder):
    """Variational PGA, loss (11): L_r + alpha L_lr,N + beta L_lr,H + gamma L_vae.

    L_vae (10) = E_q[-log p(z_hat | z)] + KL(q(z|x) || N(0, I)) with q(z|x) = N(f(x),
    diag sigma_phi^2(x)) (the encoder outputs 2H: mean f(x) and log-variance), z_hat = h(f(x))
    and p(z_hat | z) = N(h(z), sigma^2 I). The paper leaves L_vae's routing implicit; as in
    LPGA's (6) and the authors' code, h is trained through theta only (f's parameters detached
    inside h, f(x) stopped), phi receives the likelihood's gradient only through sigma_phi, and
    the KL trains phi. L_r and (2), (3) use the deterministic z = f(x).

    Args:
        latent_dim: Latent dimension H (the authors' MNIST setting: 32).
        alpha: Weight of L_lr,N (2).
        beta: Weight of L_lr,H (3).
        gamma: Weight of L_vae (10).
        sigma: Standard deviation of p(z_hat | z) (> 0).
        warmup_steps: Optimizer steps trained on L_r alone (the authors use none for VPGA).
        optimizer: Optimizer factory; Adam(lr=1e-3) by default (the paper: SGD, momentum 0.9).

    Reference:
        Zhang, Zhang, Li, Bengio & Paull, "Perceptual Generative Autoencoders", ICML 2020
        (arXiv:1906.10335).
    """

    paper = "Zhang, Zhang, Li, Bengio & Paull, *Perceptual Generative Autoencoders*, ICML 2020"

    def __init__(
        self,
        image_shape: ImageShape = (1, 28, 28),
        latent_dim: int = 32,
        alpha: float = 0.3675,
        beta: float = 0.0,
        gamma: float = 0.091875,
        sigma: float = 1.22,
        warmup_steps: int = 0,
        backbone: Backbone | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        _check(warmup_steps, alpha=alpha, beta=beta, gamma=gamma)
        if sigma <= 0:
            raise ValueError(f"sigma (std of p(z_hat | z)) must be > 0, got {sigma}")
        super().__init__(image_shape, latent_dim, backbone, optimizer, 2 * latent_dim,
                         encoder=encoder, decoder=decoder)
        self.alpha, self.beta, self.gamma, self.sigma = alpha, beta, gamma, sigma
        self.warmup_steps = warmup_steps
        self.save_hyperparameters()

    def _f(self, x: Tensor) -> Tensor:
        return self.encoder(x)[:, : self.latent_dim]

    def loss(self, x: Tensor) -> LossOutput:
        """Loss (11) with one reparameterised z and one z ~ N(0, I) per example."""
        mean, logvar = self.posterior(x)  # (B, H) each
        x_hat = self.decode(mean)
        rec = 0.5 * sse(x, x_hat).mean()
        if self.training and self.global_step < self.warmup_steps:
            return LossOutput(rec, {"rec": rec})
        lr_n, lr_h = _latent_reconstruction(self._f, self.decoder, mean, x_hat)
        noise = reparameterize(torch.zeros_like(mean), logvar)  # sigma_phi(x) * eps
        z_pair = torch.cat([mean.detach(), mean.detach() + noise])  # (2B, H): f(x) and z ~ q
        z_hat, h_z = _frozen_h(self.encoder, self.decoder, z_pair, self.latent_dim).chunk(2)
        nll = gaussian_nll(z_hat, h_z, self.sigma).mean()
        kl = gaussian_kl_standard(mean, logvar).mean()
        total = rec + self.alpha * lr_n + self.beta * lr_h + self.gamma * (nll + kl)
        terms = {"rec": rec, "lr_n": lr_n, "lr_h": lr_h, "nll": nll, "kl": kl}
        return LossOutput(total, terms)
