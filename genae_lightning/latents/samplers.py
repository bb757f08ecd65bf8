"""The samplers FID is reported for: the method's own prior and the post-hoc Gaussian and GMM.

Names follow the W&B keys ``fid/<sampler>``: ``"prior"`` is the method's own prior (the
default of ``module.sample``), ``"gaussian"`` and ``"gmm"`` the post-hoc priors fitted to training
codes (InjFlow paper, section 2.2.1), under the names the module stores them by.
A module that was not fitted yet (mid-training) gets temporary
ones, fitted here to the codes at hand.
"""

from collections.abc import Iterator, Mapping, Sequence

import lightning as L
import torch
from torch import Tensor

from genae_lightning.functional.precision import to_module
from genae_lightning.priors import Prior, fit_posthoc_prior

SAMPLERS: tuple[str, ...] = ("prior", "gaussian", "gmm")


def check_samplers(samplers: Sequence[str]) -> None:
    """Raise a ValueError naming the first of ``samplers`` that is not in :data:`SAMPLERS`."""
    for sampler in samplers:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: expected one of {list(SAMPLERS)}")


def posthoc_priors(
    module: L.LightningModule,
    codes: Tensor | None,
    samplers: Sequence[str],
    n_components: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Prior]:
    """The post-hoc priors among ``samplers`` that the module has not fitted, fitted to ``codes``.

    Returns:
        ``{name: prior}`` for the "gaussian"/"gmm" samplers missing on the module (empty when the
        module has them all, e.g. after :class:`~genae_lightning.callbacks.FitLatentPrior`).
    """
    missing = [s for s in samplers if s != "prior" and s not in module.posthoc_priors]
    if missing and codes is None:
        raise ValueError(f"the module has no fitted {missing} prior(s) and no codes were given to "
                         "fit them; pass training codes or fit them with FitLatentPrior")
    fitted: dict[str, Prior] = {}
    for name in missing:
        if progress:
            print(f"fitting the {name!r} prior to {len(codes)} codes")
        fitted[name] = fit_posthoc_prior(name, codes, n_components, seed)
    return fitted


@torch.no_grad()
def sample_batches(
    module: L.LightningModule,
    sampler: str,
    n: int,
    batch_size: int,
    generator: torch.Generator,
    extra_priors: Mapping[str, Prior] | None = None,
) -> Iterator[Tensor]:
    """Yield ``n`` decoded samples of ``sampler`` in batches of (at most) ``batch_size``.

    The module's own priors go through ``module.sample`` (so a method's custom sampler is used);
    ``extra_priors`` (temporary post-hoc priors) through ``module.decode``.
    """
    check_samplers([sampler])
    extra = dict(extra_priors or {})
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if sampler in extra:
            z = to_module(extra[sampler].sample(size, generator=generator), module)
            yield module.decode(z)
        elif sampler == "prior":
            yield module.sample(size, generator=generator)
        else:
            yield module.sample(size, prior=sampler, generator=generator)
