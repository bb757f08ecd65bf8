"""Post-hoc priors fitted to encoded training data (InjFlow paper section 2.2.1)."""

from typing import Any, Literal

import torch
from torch import Tensor, nn

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


class PosthocPriors(nn.ModuleDict):
    """The post-hoc priors fitted to a model's codes, by name; saved and rebuilt with the model.

    Each prior's tensors are in the state dict as ``<prefix><name>.<tensor>`` (in a method,
    ``posthoc_priors.gmm.means``, ...), which records the fitted names: loading a state dict that
    holds them rebuilds those priors first (a load-state-dict pre-hook), so a fresh model loads a
    checkpoint of a fitted one without knowing in advance which priors it holds.

    Args:
        latent_dim: Dimension of the latents the priors are fitted to.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_load_state_dict_pre_hook(PosthocPriors._rebuild)

    def get(self, name: str) -> Prior:
        """The fitted prior ``name``; says how to fit it when it is missing."""
        if name not in POSTHOC_PRIORS:
            raise ValueError(f"unknown prior {name!r}: expected 'standard', 'gaussian' or 'gmm'")
        if name not in self:
            raise RuntimeError(
                f"the post-hoc {name!r} prior has not been fitted on this model: train with the "
                "FitLatentPrior callback, or call FitLatentPrior.fit_module(model, dataloader)"
            )
        return self[name]  # type: ignore[return-value]

    def set(self, name: str, prior: Prior, device: torch.device) -> None:
        """Store the fitted prior ``name`` (on ``device``), checking its dimension."""
        if prior.dim != self.latent_dim:
            raise ValueError(f"prior dimension {prior.dim} != latent_dim {self.latent_dim}")
        self[name] = prior.to(device)

    def _rebuild(self, state: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """Before loading: build every prior whose tensors the state dict holds."""
        names = {key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)}
        for name in sorted(names):
            sub = {k[len(prefix) + len(name) + 1:]: v for k, v in state.items()
                   if k.startswith(f"{prefix}{name}.")}
            self[name] = prior_from_state(name, sub)
