"""Regularised VAEs, each with a standard normal or a decoupled prior (dpVAE paper, sec. 4.3).

Every class is a :class:`~genae_lightning.methods.vae.VAE` that replaces the KL term by its
regulariser; the prior object (``prior=StandardNormal()``, the default, or
``prior=DecoupledPrior(...)``) changes only how p(z) is evaluated and sampled, so the same
hyperparameters give e.g. beta-VAE-H and beta-dpVAE-H. Shared arguments (``image_shape``,
``latent_dim``, ``prior``, ``sigma``, ``backbone``, ``optimizer``) mean what they mean in
:class:`~genae_lightning.methods.vae.VAE`.
"""

from collections.abc import Sequence

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torch.func import functional_call

from genae_lightning.autoencoder.adversarial import LatentAdversary
from genae_lightning.autoencoder.base import LossOutput
from genae_lightning.backbones import Backbone
from genae_lightning.backbones.base import ImageShape
from genae_lightning.functional import discriminator_loss, mmd, wae_kernel_scales
from genae_lightning.functional.mmd import Kernel
from genae_lightning.functional.tc import AggregateEstimator, kl_decomposition, permute_dims
from genae_lightning.methods.vae import VAE
from genae_lightning.methods.wae import latent_discriminator
from genae_lightning.priors import Prior


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


class BetaVAEH(VAE):
    """beta-VAE (Higgins et al.): R = beta * KL(q(z|x) || p(z)).

    Args:
        beta: Weight of the KL (>= 0; 1 is the VAE).
        prior: ``StandardNormal()`` or None (beta-VAE-H), or ``DecoupledPrior(...)``
            (beta-dpVAE-H).
        sigma: Decoder standard deviation.

    Reference:
        Higgins et al., "beta-VAE", ICLR 2017; Bhalodia et al., dpVAEs, ACCV 2020.
    """

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32,
                 beta: float = 4.0, prior: Prior | None = None, sigma: float = 1.0,
                 backbone: Backbone | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        _check_nonnegative(beta=beta)
        super().__init__(image_shape, latent_dim, sigma, prior, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.beta = beta
        self.save_hyperparameters()

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """R = beta * KL."""
        kl = self.kl(mean, logvar, z).mean()
        return LossOutput(self.beta * kl, {"kl": kl})


class BetaVAEB(VAE):
    """beta-VAE with a capacity (Burgess et al.): R = gamma * |KL - C|, C annealed linearly.

    C grows from ``capacity_start`` to ``capacity_max`` over ``capacity_steps`` training steps
    (``global_step``) and stays there. With the decoupled prior the flow is trained by the same
    term (the paper keeps the constraint and swaps only the KL).

    Args:
        gamma: Weight of the capacity constraint (> 0).
        capacity_max: Final capacity C in nats (>= capacity_start).
        capacity_steps: Steps of the linear increase (>= 1).
        capacity_start: Capacity at step 0 (>= 0).
        prior: ``StandardNormal()`` or None (beta-VAE-B), or ``DecoupledPrior(...)``
            (beta-dpVAE-B).
        sigma: Decoder standard deviation.

    Reference:
        Burgess et al., "Understanding disentangling in beta-VAE", 2018; Bhalodia et al., dpVAEs,
        ACCV 2020.
    """

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32,
                 gamma: float = 1000.0, capacity_max: float = 25.0, capacity_steps: int = 100_000,
                 capacity_start: float = 0.0, prior: Prior | None = None, sigma: float = 1.0,
                 backbone: Backbone | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        _check_nonnegative(gamma=gamma, capacity_start=capacity_start)
        if capacity_max < capacity_start or capacity_steps < 1:
            raise ValueError(f"need capacity_max >= capacity_start and capacity_steps >= 1, got "
                             f"{capacity_max}, {capacity_start}, {capacity_steps}")
        super().__init__(image_shape, latent_dim, sigma, prior, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.gamma, self.capacity_max, self.capacity_start = gamma, capacity_max, capacity_start
        self.capacity_steps = capacity_steps
        self.save_hyperparameters()

    def capacity(self, step: int) -> float:
        """C at training step ``step``."""
        frac = min(1.0, step / self.capacity_steps)
        return self.capacity_start + frac * (self.capacity_max - self.capacity_start)

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """R = gamma * |KL - C(step)|."""
        kl = self.kl(mean, logvar, z).mean()
        c = self.capacity(self.global_step)
        return LossOutput(self.gamma * (kl - c).abs(), {"kl": kl, "capacity": kl.new_tensor(c)})


class BetaTCVAE(VAE):
    """beta-TCVAE (Chen et al.): R = alpha * MI + beta * TC + gamma * (dimension-wise) KL.

    The terms are the minibatch estimates of :func:`~genae_lightning.functional.tc.kl_decomposition`
    at the posterior samples. The prior enters only the last, E[sum_l log q(z_l) - log p(z)]: for
    the decoupled prior log p(z) is the flow's density, so that term trains the flow.

    Args:
        alpha: Weight of the index-code mutual information (>= 0).
        beta: Weight of the total correlation (>= 0).
        gamma: Weight of the dimension-wise KL (>= 0).
        dataset_size: Training-set size N of the minibatch estimators.
        estimator: ``"mws"`` (minibatch weighted) or ``"mss"`` (stratified) sampling.
        prior: ``StandardNormal()`` or None (beta-TCVAE), or ``DecoupledPrior(...)``
            (beta-TC-dpVAE).
        sigma: Decoder standard deviation.

    Reference:
        Chen et al., "Isolating Sources of Disentanglement in VAEs", NeurIPS 2018; Bhalodia et
        al., dpVAEs, ACCV 2020.
    """

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32,
                 alpha: float = 1.0, beta: float = 6.0, gamma: float = 1.0,
                 dataset_size: int = 60_000, estimator: AggregateEstimator = "mws",
                 prior: Prior | None = None, sigma: float = 1.0,
                 backbone: Backbone | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        _check_nonnegative(alpha=alpha, beta=beta, gamma=gamma)
        if dataset_size < 1 or estimator not in ("mws", "mss"):
            raise ValueError(f"need dataset_size >= 1 and estimator 'mws' or 'mss', got "
                             f"{dataset_size} and {estimator!r}")
        super().__init__(image_shape, latent_dim, sigma, prior, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.dataset_size, self.estimator = dataset_size, estimator
        self.save_hyperparameters()

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """R = alpha * MI + beta * TC + gamma * dim_kl, minibatch estimates."""
        n = max(self.dataset_size, z.shape[0])
        parts = kl_decomposition(z, mean, logvar, self.prior.log_prob(z), n, self.estimator)
        mi, tc, dim_kl = (p.mean() for p in parts)
        total = self.alpha * mi + self.beta * tc + self.gamma * dim_kl
        return LossOutput(total, {"mi": mi, "tc": tc, "dim_kl": dim_kl, "kl": mi + tc + dim_kl})


class FactorVAE(LatentAdversary, VAE):
    """FactorVAE (Kim & Mnih): R = KL + gamma * TC, TC estimated by a discriminator D.

    D (logit of "joint" vs "product of marginals") estimates TC(z) = E_q[log D(z) / (1 - D(z))].
    Manual optimisation, one encoder pass per batch: first the VAE (encoder, decoder, flow) on
    ``loss``, in which D's weights are detached so the VAE loss never reaches them; then D on
    BCE(D(z_a), 1) + BCE(D(permute_dims(z_b)), 0) from the two halves of the batch's detached
    codes, with its own optimizer. ``global_step`` (so ``max_steps``) counts iterations: only
    the VAE's optimizer step is counted (as in WAEGAN).

    Args:
        gamma: Weight of the TC estimate (>= 0).
        discriminator_hidden: Hidden widths of D (Kim & Mnih: 5 x 1000).
        prior: ``StandardNormal()`` or None (FactorVAE), or ``DecoupledPrior(...)``
            (Factor-dpVAE).
        sigma: Decoder standard deviation.
        optimizer: Optimizer factory of the VAE (encoder, decoder, flow).
        discriminator_optimizer: Optimizer factory of D (Kim & Mnih: Adam, lr 1e-4,
            betas (0.5, 0.9)).

    Reference:
        Kim & Mnih, "Disentangling by Factorising", ICML 2018; Bhalodia et al., dpVAEs, ACCV 2020.
    """

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32,
                 gamma: float = 10.0, discriminator_hidden: Sequence[int] = (1000,) * 5,
                 prior: Prior | None = None, sigma: float = 1.0,
                 backbone: Backbone | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 discriminator_optimizer: OptimizerCallable = torch.optim.Adam,
                 encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        _check_nonnegative(gamma=gamma)
        if not discriminator_hidden or min(discriminator_hidden) < 1:
            raise ValueError(f"discriminator_hidden needs widths >= 1, got {discriminator_hidden}")
        super().__init__(image_shape, latent_dim, sigma, prior, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.gamma = gamma
        self.discriminator = latent_discriminator(latent_dim, discriminator_hidden)
        self.discriminator_optimizer = discriminator_optimizer
        self.automatic_optimization = False
        self.save_hyperparameters()

    def tc_estimate(self, z: Tensor) -> Tensor:
        """Batch mean of log D(z) / (1 - D(z)), D's weights detached (gradients reach z only)."""
        weights = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, weights, (z,)).mean()

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """KL + gamma * TC estimate."""
        kl = self.kl(mean, logvar, z).mean()
        tc = self.tc_estimate(z)
        return LossOutput(kl + self.gamma * tc, {"kl": kl, "tc": tc})

    def discriminator_objective(self, z: Tensor) -> Tensor:
        """D's loss: first half of the codes (detached) as joint, permuted second half as fake."""
        z = z.detach()
        if z.shape[0] < 2:
            raise ValueError(f"FactorVAE needs batches of >= 2 examples, got {z.shape[0]}")
        half = z.shape[0] // 2
        real, fake = z[:half], permute_dims(z[half:])
        return discriminator_loss(self.discriminator(real), self.discriminator(fake))

    def adversarial_losses(self, x: Tensor) -> tuple[LossOutput, Tensor]:
        """The VAE's objective and D's loss, from one encoder pass."""
        out, z = self.loss_and_codes(x)
        return out, self.discriminator_objective(z)


class InfoVAE(VAE):
    """InfoVAE (Zhao et al.): R = (1 - alpha) KL + (alpha + lam - 1) MMD(q(z), p(z)).

    The MMD compares the batch's posterior samples with as many prior samples; for the decoupled
    prior these are g^{-1}(z0), differentiable in the flow, so both terms train it.

    Args:
        alpha: InfoVAE's alpha (<= 1; 0 keeps the full KL, 1 drops it: MMD-VAE).
        lam: InfoVAE's lambda (> 0; alpha + lam >= 1).
        kernel: MMD kernel, ``"imq"`` or ``"rbf"``.
        kernel_scales: Kernel bandwidths summed over; None gives WAE's 2 d x {0.1, ..., 10}.
        prior: ``StandardNormal()`` or None (InfoVAE), or ``DecoupledPrior(...)``
            (Info-dpVAE).
        sigma: Decoder standard deviation.

    Reference:
        Zhao, Song & Ermon, "InfoVAE", AAAI 2019; Bhalodia et al., dpVAEs, ACCV 2020.
    """

    def __init__(self, image_shape: ImageShape = (1, 28, 28), latent_dim: int = 32,
                 alpha: float = 0.0, lam: float = 1000.0, kernel: Kernel = "imq",
                 kernel_scales: Sequence[float] | None = None, prior: Prior | None = None,
                 sigma: float = 1.0,
                 backbone: Backbone | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None) -> None:
        if alpha > 1 or lam <= 0 or alpha + lam < 1:
            raise ValueError(f"InfoVAE needs alpha <= 1, lam > 0 and alpha + lam >= 1, got "
                             f"alpha={alpha}, lam={lam}")
        if kernel not in ("imq", "rbf"):
            raise ValueError(f"kernel must be 'imq' or 'rbf', got {kernel!r}")
        super().__init__(image_shape, latent_dim, sigma, prior, backbone, optimizer,
                         encoder=encoder, decoder=decoder)
        self.alpha, self.lam, self.kernel = alpha, lam, kernel
        self.kernel_scales = tuple(kernel_scales or wae_kernel_scales(latent_dim))
        self.save_hyperparameters()

    def regulariser(self, mean: Tensor, logvar: Tensor, z: Tensor) -> LossOutput:
        """(1 - alpha) KL + (alpha + lam - 1) MMD(posterior samples, prior samples)."""
        kl = self.kl(mean, logvar, z).mean()
        prior_z = self.prior.sample(z.shape[0]).to(z)
        div = mmd(z, prior_z, self.kernel, self.kernel_scales)
        total = (1 - self.alpha) * kl + (self.alpha + self.lam - 1) * div
        return LossOutput(total, {"kl": kl, "mmd": div})
