"""The samplers FID is reported for: the method's own prior and the post-hoc Gaussian and GMM.

Names follow the W&B keys ``fid/<sampler>``: ``"prior"`` is the method's own prior (its
``"standard"`` prior), ``"gaussian"`` and ``"gmm"`` the post-hoc priors fitted to training codes
(InjFlow paper, section 2.2.1). A module that was not fitted yet (mid-training) gets temporary
ones, fitted here to the codes at hand.
"""

import warnings
from collections.abc import Iterator, Mapping, Sequence

import lightning as L
import torch
from torch import Tensor
from tqdm.auto import tqdm

from genae_lightning.priors import GaussianMixture, Prior, fit_posthoc_prior

SAMPLERS: tuple[str, ...] = ("prior", "gaussian", "gmm")


def module_prior_name(sampler: str) -> str:
    """The module's name of a sampler's prior (``"prior"`` -> ``"standard"``)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: expected one of {list(SAMPLERS)}")
    return "standard" if sampler == "prior" else sampler


def fit_gmm(
    codes: Tensor,
    n_components: int = 10,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg: float = 1e-6,
    progress: bool = True,
) -> GaussianMixture:
    """Fit a full-covariance GMM by EM (scikit-learn), one EM step at a time with a progress bar.

    Same model and stopping rule as :meth:`GaussianMixture.fit` (change of the lower bound
    below ``tol``), so that fitting on tens of thousands of codes shows how far it got.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGMM

    if codes.dim() != 2 or codes.shape[0] < n_components:
        raise ValueError(f"need at least n_components={n_components} codes of shape (N, d) to fit "
                         f"a GMM, got {tuple(codes.shape)}")
    gmm = SkGMM(n_components, covariance_type="full", reg_covar=reg, random_state=seed,
                max_iter=1, warm_start=True)
    data = codes.detach().double().cpu().numpy()
    bound = -float("inf")
    desc = f"fitting GMM ({n_components} components, {len(data)} codes)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one EM step per fit() call
        for _ in tqdm(range(max_iter), desc=desc, disable=not progress, leave=False):
            gmm.fit(data)
            if abs(gmm.lower_bound_ - bound) < tol:
                break
            bound = gmm.lower_bound_
    return GaussianMixture(torch.as_tensor(gmm.weights_), torch.as_tensor(gmm.means_),
                           torch.as_tensor(gmm.covariances_))


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
        if name == "gmm":
            fitted[name] = fit_gmm(codes, n_components, seed, progress=progress)
        else:
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
    extra = dict(extra_priors or {})
    name = module_prior_name(sampler)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if name in extra:
            z = extra[name].sample(size, generator=generator).to(module.device)
            yield module.decode(z)
        else:
            yield module.sample(size, prior=name, generator=generator)
