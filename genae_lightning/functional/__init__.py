"""Pure, tested maths shared by the methods (no modules, no state)."""

from genae_lightning.functional.gaussian import gaussian_kl_standard, gaussian_nll, reparameterize
from genae_lightning.functional.injflow import (
    injectivity_penalty,
    linear_frobenius_term,
    log_frobenius_term,
    penalty_coefficient,
)
from genae_lightning.functional.jacobian import (
    JacobianEstimate,
    estimate_jacobian_sq_norm,
    jvp_finite_difference,
    jvp_forward,
    vjp_reverse,
)
from genae_lightning.functional.reconstruction import sum_squared_error

__all__ = [
    "JacobianEstimate",
    "estimate_jacobian_sq_norm",
    "gaussian_kl_standard",
    "gaussian_nll",
    "injectivity_penalty",
    "jvp_finite_difference",
    "jvp_forward",
    "linear_frobenius_term",
    "log_frobenius_term",
    "penalty_coefficient",
    "reparameterize",
    "sum_squared_error",
    "vjp_reverse",
]
