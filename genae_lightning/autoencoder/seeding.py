"""Per-step random streams: the noise of a step does not depend on whether the run was resumed.

A step's draws (J v probes, posterior samples, perturbations) come from a stream seeded by
(``noise_seed``, ``global_step``, ``batch_idx``, stage, process rank) instead of the global
stream's position, which a resumed run cannot restore exactly.
"""

import contextlib
from collections.abc import Iterator

import torch

STAGE_CODES = {"train": 0, "val": 1, "test": 2}


def initial_noise_seed() -> torch.Tensor:
    """A run's base noise seed, from the global seed (``seed_everything`` fixes it)."""
    return torch.tensor(torch.initial_seed() % 2**62)


def step_seed(noise_seed: int, global_step: int, batch_idx: int, stage: str, rank: int = 0) -> int:
    """The seed of one step's stream: distinct per step, batch, stage and process.

    >>> step_seed(7, 0, 0, "train") == step_seed(7, 0, 0, "train") != step_seed(7, 1, 0, "train")
    True
    """
    code = STAGE_CODES.get(stage, 3)
    seed = noise_seed * 1_000_003 + global_step * 1009 + batch_idx * 4 + code + rank * 2**40
    return seed % 2**63


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block on the global RNG reseeded to ``seed``, then restore the outer stream.

    The CPU generator (and ``device``'s when it is a GPU) is forked, so draws outside the block
    are untouched.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed(seed)
        yield
