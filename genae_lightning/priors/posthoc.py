"""Post-hoc priors fitted to encoded training data (InjFlow paper section 2.2.1)."""

from typing import Literal

from torch import Tensor

from genae_lightning.priors.base import Prior
from genae_lightning.priors.gaussian import FullCovGaussian
from genae_lightning.priors.gmm import GaussianMixture

PosthocName = Literal["gaussian", "gmm"]
POSTHOC_PRIORS: dict[str, type[Prior]] = {"gaussian": FullCovGaussian, "gmm": GaussianMixture}


def fit_posthoc_prior(name: str, z: Tensor, n_components: int = 10, seed: int = 0) -> Prior:
    """Fit the post-hoc prior ``name`` ("gaussian" or "gmm") to latents of shape (N, dim)."""
    if name == "gaussian":
        return FullCovGaussian.fit(z)
    if name == "gmm":
        return GaussianMixture.fit(z, n_components=n_components, seed=seed)
    raise ValueError(f"unknown post-hoc prior {name!r}: expected one of {sorted(POSTHOC_PRIORS)}")


def prior_from_state(name: str, state: dict[str, Tensor]) -> Prior:
    """Rebuild a fitted post-hoc prior from its ``state_dict`` (as stored in checkpoints)."""
    if name == "gaussian":
        mean, tril = state["mean"], state["scale_tril"]
        return FullCovGaussian(mean, tril.double() @ tril.double().T)
    if name == "gmm":
        trils = state["scale_trils"].double()
        return GaussianMixture(state["weights"], state["means"], trils @ trils.transpose(1, 2))
    raise ValueError(f"unknown post-hoc prior {name!r} in checkpoint: expected one of "
                     f"{sorted(POSTHOC_PRIORS)}")
