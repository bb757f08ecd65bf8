"""Submanifold diagnostics of VAEs (dpVAE paper, sections 4.1 and 5.1).

- ``skl``: KL(p || q) + KL(q || p) between the prior p(z) and the aggregate posterior q(z), by
  sampling (the paper: 5,000 samples);
- ``nll``: -log p(x) by importance sampling with k draws from q(z|x) per example;
- low-posterior (LP) latents: the prior draws with the lowest q(z) (``fid/low_posterior``);
  high-posterior (HP) latents: the q(z) draws with the lowest prior density;
- leakage score LS(tau) = E_q[S_tau(z)], S_tau(z) = log q(z) - log p(h(z)) where
  log p(h(z)) < tau, else 0 (eq. 6); h = g for the decoupled prior (the density of N(0, I) at
  z0 = g(z)), the identity otherwise.

Every function takes a trained model (with ``posterior``, ``decode``, ``prior``) and data or an
:class:`~genae_lightning.latents.aggregate.AggregatePosterior`; :func:`submanifold_metrics` runs
them all under the names ``skl``, ``nll``, ``fid/low_posterior`` and ``leakage/<tau>``.
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from genae_lightning.functional import diag_gaussian_log_prob, gaussian_nll
from genae_lightning.latents.aggregate import aggregate_posterior, require_posterior
from genae_lightning.priors import DecoupledPrior, Prior, StandardNormal

if TYPE_CHECKING:
    from genae_lightning.metrics.fid import FID


def _images(batch: object) -> Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch  # type: ignore[return-value]


@torch.no_grad()
def symmetric_kl(
    prior: Prior, q: Prior, n: int = 5000, generator: torch.Generator | None = None
) -> dict[str, float]:
    """KL(p || q), KL(q || p) and their sum, each a mean over n samples of p (resp. q)."""
    z_p = prior.sample(n, generator=generator)
    z_q = q.sample(n, generator=generator).to(z_p)
    kl_pq = (prior.log_prob(z_p) - q.log_prob(z_p).to(z_p)).mean()
    kl_qp = (q.log_prob(z_q).to(z_q) - prior.log_prob(z_q)).mean()
    return {"skl": float(kl_pq + kl_qp), "kl_pq": float(kl_pq), "kl_qp": float(kl_qp)}


def _log_likelihood(model: nn.Module, x: Tensor, x_hat: Tensor) -> Tensor:
    fn = getattr(model, "log_likelihood", None)
    return fn(x, x_hat) if callable(fn) else -gaussian_nll(x, x_hat, float(model.sigma))


@torch.no_grad()
def importance_log_likelihood(
    model: nn.Module, x: Tensor, k: int = 1000, chunk: int = 250,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-sampled log p(x), shape (B,).

    log p(x) ~ log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) with z_i ~ q(z|x).

    Args:
        model: Has ``posterior(x) -> (mean, logvar)``, ``decode(z)``, ``prior`` and either
            ``log_likelihood(x, x_hat)`` or a Gaussian decoder's ``sigma``.
        x: Images, shape (B, C, H, W).
        k: Importance samples per image (the paper: 21,000).
        chunk: Samples per image decoded at once (memory ~ chunk x B images).
        generator: Random generator of the draws.
    """
    require_posterior(model)
    if k < 1:
        raise ValueError(f"k (importance samples) must be >= 1, got {k}")
    mean, logvar = model.posterior(x)
    log_w = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        eps = torch.randn((c, *mean.shape), generator=generator,
                          device=generator.device if generator else mean.device).to(mean)
        z = (mean + torch.exp(0.5 * logvar) * eps).flatten(0, 1)  # (c * B, d)
        x_rep = x.unsqueeze(0).expand(c, *x.shape).flatten(0, 1)
        log_px_z = _log_likelihood(model, x_rep, model.decode(z))
        log_qz_x = diag_gaussian_log_prob(z, mean.repeat(c, 1), logvar.repeat(c, 1))
        log_w.append((log_px_z + model.prior.log_prob(z) - log_qz_x).view(c, -1))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


def dataset_nll(
    model: nn.Module, dataloader: DataLoader, k: int = 1000, max_examples: int | None = 1000,
    chunk: int = 250, seed: int = 0,
) -> float:
    """Mean -log p(x) (nats per example) over (the first ``max_examples``) images of a loader."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in dataloader:
        x = _images(batch).to(device)
        if max_examples is not None:
            x = x[: max_examples - count]
        total += float(-importance_log_likelihood(model, x, k, chunk, generator).sum())
        count += x.shape[0]
        if max_examples is not None and count >= max_examples:
            break
    if count == 0:
        raise ValueError("the dataloader yielded no images for the NLL")
    return total / count


@torch.no_grad()
def low_posterior_latents(
    prior: Prior, q: Prior, n: int, n_candidates: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The n of ``n_candidates`` prior draws (10 n by default) with the lowest q(z); (n, d)."""
    z = prior.sample(_candidates(n, n_candidates), generator=generator)
    return z[q.log_prob(z).to(z.device).argsort()[:n]]


def _candidates(n: int, n_candidates: int | None) -> int:
    """Draws to pick the n least likely from: ``n_candidates``, 10 n by default."""
    n_candidates = n_candidates or 10 * n
    if n_candidates < n:
        raise ValueError(f"n_candidates ({n_candidates}) must be >= n ({n})")
    return n_candidates


def generation_log_prob(prior: Prior, z: Tensor) -> Tensor:
    """Density log p(h(z)) of eq. 6: N(0, I) at g(z) for the decoupled prior, else p(z)."""
    if isinstance(prior, DecoupledPrior):
        return StandardNormal(prior.dim).to(z.device).log_prob(prior.to_base(z)[0])
    return prior.log_prob(z)


@torch.no_grad()
def high_posterior_latents(
    prior: Prior, q: Prior, n: int, n_candidates: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The n of ``n_candidates`` q(z) draws (10 n by default) least likely under the prior."""
    z = q.sample(_candidates(n, n_candidates), generator=generator).to(prior.device)
    return z[generation_log_prob(prior, z).argsort()[:n]]


@torch.no_grad()
def leakage_scores(
    prior: Prior, q: Prior, thresholds: Sequence[float], n: int = 5000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """LS(tau) for each threshold, shape (T,); NaN where no q-sample has log p(h(z)) < tau."""
    z = q.sample(n, generator=generator).to(prior.device)
    log_p = generation_log_prob(prior, z)
    score = q.log_prob(z).to(log_p) - log_p  # (n,)
    taus = torch.as_tensor(list(thresholds), dtype=log_p.dtype, device=log_p.device)
    leaking = log_p[None, :] < taus[:, None]  # (T, n)
    ls = (score[None, :] * leaking).sum(1) / n
    return torch.where(leaking.any(1), ls, torch.full_like(ls, float("nan"))).cpu()


@torch.no_grad()
def decoded_batches(model: nn.Module, z: Tensor, batch_size: int = 256) -> Iterator[Tensor]:
    """Decode latents (N, d) batch by batch (e.g. LP latents for ``fid/low_posterior``)."""
    device = next(model.parameters()).device
    for part in z.split(batch_size):
        yield model.decode(part.to(device))


def default_thresholds(dim: int, offsets: Sequence[float] = tuple(range(1, 13))) -> list[float]:
    """Thresholds tau = log N(0; 0, I_d) - offset: ``offsets`` nats below the prior's mode."""
    mode = -0.5 * dim * math.log(2 * math.pi)
    return [mode - float(o) for o in offsets]


@dataclass
class DiagnosticsConfig:
    """Sample counts of :func:`submanifold_metrics`.

    Attributes:
        q_points: Training posteriors in the aggregate posterior mixture (all when None).
        skl_samples: Samples of p and of q for the symmetric KL (the paper: 5,000).
        nll_k: Importance samples per image for the NLL (the paper: 21,000).
        nll_examples: Evaluation images of the NLL (all when None).
        lp_samples: Low-posterior samples decoded for ``fid/low_posterior``.
        lp_candidates: Prior draws they are the lowest-q(z) of (10 x lp_samples when None).
        thresholds: Leakage thresholds tau (None: :func:`default_thresholds`).
        batch_size: Images decoded at once.
        seed: Seed of every draw.
    """

    q_points: int | None = 10_000
    skl_samples: int = 5000
    nll_k: int = 1000
    nll_examples: int | None = 1000
    lp_samples: int = 5000
    lp_candidates: int | None = None
    thresholds: Sequence[float] | None = None
    batch_size: int = 256
    seed: int = 0


@torch.no_grad()
def submanifold_metrics(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    fid: "FID | None" = None,
    config: DiagnosticsConfig | None = None,
) -> dict[str, float]:
    """``skl``, ``nll``, ``leakage/<tau>`` and, given an FID with its real set, LP-FID.

    Args:
        model: A trained VAE-like method (``posterior``, ``decode``, ``prior``).
        train_loader: Training images: the aggregate posterior q(z).
        test_loader: Held-out images: the NLL.
        fid: FID scorer (:class:`~genae_lightning.metrics.FID`) whose real set is filled
            (``fid.set_real``); no ``fid/low_posterior`` if None.
        config: Sample counts; ``DiagnosticsConfig()`` when None.
    """
    config = config or DiagnosticsConfig()
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        q = aggregate_posterior(model, train_loader, config.q_points).to(device)
        gen = torch.Generator(device=device).manual_seed(config.seed)
        metrics = {"skl": symmetric_kl(model.prior, q, config.skl_samples, gen)["skl"]}
        metrics["nll"] = dataset_nll(model, test_loader, config.nll_k, config.nll_examples,
                                     seed=config.seed)
        taus = config.thresholds or default_thresholds(q.dim)
        scores = leakage_scores(model.prior, q, taus, config.skl_samples, gen)
        metrics.update({f"leakage/{tau:.1f}": float(s) for tau, s in zip(taus, scores,
                                                                         strict=True)})
        if fid is not None:
            z = low_posterior_latents(model.prior, q, config.lp_samples, config.lp_candidates, gen)
            metrics[f"{fid.prefix}/low_posterior"] = fid.score(
                decoded_batches(model, z, config.batch_size), "FID features (LP samples)")
        return metrics
    finally:
        model.train(was_training)


def dataset_submanifold_metrics(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    fid: "FID | None" = None,
    config: DiagnosticsConfig | None = None,
    num_images: int = 10_000,
) -> dict[str, float]:
    """:func:`submanifold_metrics` on datasets (``genae evaluate --submanifold``).

    q(z) is built from a seeded random subset of ``train``; the real FID statistics of
    ``fid/low_posterior`` from the first ``num_images`` images of ``test``.
    """
    config = config or DiagnosticsConfig()
    if not callable(getattr(model, "posterior", None)):
        return {}  # not a VAE: nothing to diagnose
    shuffled = DataLoader(train, batch_size=config.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(config.seed))
    test_loader = DataLoader(test, batch_size=config.batch_size)
    if fid is not None:
        subset = Subset(test, range(min(num_images, len(test))))
        fid.set_real(_images(b) for b in DataLoader(subset, config.batch_size))
    return submanifold_metrics(model, shuffled, test_loader, fid, config)
