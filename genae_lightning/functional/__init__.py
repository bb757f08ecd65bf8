"""Pure, tested maths shared by the methods (no modules, no state)."""

from genae_lightning.functional.adversarial import discriminator_loss, generator_loss
from genae_lightning.functional.batchnorm import batchnorm_layers, frozen_batchnorm_stats
from genae_lightning.functional.denoising import denoising_error
from genae_lightning.functional.frechet import frechet_distance, gaussian_moments
from genae_lightning.functional.gaussian import gaussian_kl_standard, gaussian_nll, reparameterize
from genae_lightning.functional.injflow import (
    injectivity_penalty,
    linear_frobenius_term,
    log_frobenius_term,
    penalty_coefficient,
)
from genae_lightning.functional.jacobian import (
    JacobianEstimate,
    check_jvp_mode,
    estimate_jacobian_sq_norm,
    jvp_finite_difference,
    jvp_forward,
    jvp_needs_grad,
    vjp_reverse,
)
from genae_lightning.functional.knn import knn_accuracy
from genae_lightning.functional.lagrangian import (
    debiased,
    dual_ascent,
    lagrangian_term,
    moving_average,
)
from genae_lightning.functional.logdet import (
    gram_logdet,
    jacobian_matrix,
    linear_bound,
    log_bound,
    singular_values,
)
from genae_lightning.functional.mixture import (
    diag_gaussian_log_prob,
    diag_gaussian_mixture_log_prob,
)
from genae_lightning.functional.mmd import kernel_matrix, mmd, wae_kernel_scales
from genae_lightning.functional.pga import log_det_jacobian_estimate, sphere_perturbation
from genae_lightning.functional.reconstruction import sum_squared_error
from genae_lightning.functional.regularizers import squared_l2_norm

__all__ = [
    "JacobianEstimate",
    "check_jvp_mode",
    "diag_gaussian_log_prob",
    "diag_gaussian_mixture_log_prob",
    "discriminator_loss",
    "generator_loss",
    "kernel_matrix",
    "knn_accuracy",
    "mmd",
    "squared_l2_norm",
    "wae_kernel_scales",
    "estimate_jacobian_sq_norm",
    "gaussian_kl_standard",
    "gaussian_nll",
    "injectivity_penalty",
    "jvp_finite_difference",
    "jvp_forward",
    "jvp_needs_grad",
    "batchnorm_layers",
    "frozen_batchnorm_stats",
    "linear_frobenius_term",
    "log_frobenius_term",
    "penalty_coefficient",
    "reparameterize",
    "sum_squared_error",
    "vjp_reverse",
    "denoising_error",
    "log_det_jacobian_estimate",
    "sphere_perturbation",
    "debiased",
    "dual_ascent",
    "lagrangian_term",
    "moving_average",
    "gram_logdet",
    "jacobian_matrix",
    "linear_bound",
    "log_bound",
    "singular_values",
    "frechet_distance",
    "gaussian_moments",
]
