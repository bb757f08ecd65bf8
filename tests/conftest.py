"""Shared fixtures: tiny data, tiny trainers, the real MNIST files when present."""

import os
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.journeys.installed import install_copy

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("GENAE_OFFLINE", "1")  # never download FID weights from a test
torch.set_num_threads(1)  # tiny models: one thread per process is fastest


# Tests of other folders that take minutes, marked slow here (run them with `pytest -m slow`):
# the tiny study end to end runs ~20 `genae fit` subprocesses, about 3.5 minutes on 2 cores,
# more than the rest of `make test` takes on its worker.
@pytest.fixture(scope="session")
def installed_genae(tmp_path_factory) -> Path:
    """The ``bin`` folder of a venv where this working tree is pip-installed (non-editable),
    shared by the session's tests (tests/journeys/installed.py)."""
    return install_copy(tmp_path_factory.mktemp("installed"))


@pytest.fixture
def shared_data() -> Path:
    """The read-only folder with the real raw MNIST/Fashion-MNIST files (skip when absent)."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST raw files not found under {SHARED_DATA}")
    return SHARED_DATA


def tiny_trainer(tmp_path: Path, max_steps: int = 2, **kwargs) -> L.Trainer:
    """A CPU trainer that runs a couple of steps quietly."""
    options = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        log_every_n_steps=1,  # tiny runs have fewer batches than Lightning's default 50
        default_root_dir=str(tmp_path),
    )
    options.update(kwargs)
    return L.Trainer(**options)
