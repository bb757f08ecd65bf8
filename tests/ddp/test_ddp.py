"""DDP on 2 CPU processes (gloo): sharded batches, post-hoc priors fitted on all ranks' codes,
checkpoints written once, exact mid-epoch resume (across the DataLoader and in_memory paths).

Lightning's ``ddp`` strategy re-runs the launching script for rank 1, so the training runs in
``tests/ddp/train_gmm.py``, started here as a subprocess; the single-process reference fit is
made here, on the same training set encoded with the saved checkpoint.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from genae_lightning.data import SyntheticImages
from genae_lightning.latents import encode_dataset
from genae_lightning.methods import load_method
from genae_lightning.priors import FullCovGaussian, GaussianMixture
from tests.ddp.train_gmm import DATA, N_COMPONENTS, STOP, TOTAL

SCRIPT = Path(__file__).parent / "train_gmm.py"
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """Run the 2-process script once for the module; return its output folder."""
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARIABLES and not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], cwd=SCRIPT.parents[2],
                            env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def results(out: Path, run: str) -> list[dict]:
    return [torch.load(out / f"{run}_rank{r}.pt", weights_only=False) for r in range(2)]


def test_each_process_trains_on_its_own_share(ddp_run) -> None:
    ranks = results(ddp_run, "full")
    assert [r["world_size"] for r in ranks] == [2, 2]
    train_size = DATA["num_samples"] - round(0.1 * DATA["num_samples"])  # 90
    assert [r["batches"] for r in ranks] == [train_size // 2 // DATA["batch_size"]] * 2  # 5
    assert sorted(ranks[0]["losses"]) == list(range(1, TOTAL + 1))
    assert ranks[0]["losses"] != ranks[1]["losses"], "different data on the two processes"


def test_resumed_ddp_run_continues_exactly(ddp_run) -> None:
    for full, resumed in zip(results(ddp_run, "full"), results(ddp_run, "resumed"), strict=True):
        assert sorted(resumed["losses"]) == list(range(STOP + 1, TOTAL + 1))
        for step, loss in resumed["losses"].items():
            assert loss == pytest.approx(full["losses"][step], rel=1e-6, abs=1e-6), step


def test_checkpoints_are_written_once(ddp_run) -> None:
    names = sorted(p.name for p in (ddp_run / "full").iterdir())
    assert names == ["last.ckpt", "step=3.ckpt", "step=6.ckpt"]


def test_posthoc_priors_equal_a_single_process_fit_on_the_whole_training_set(ddp_run) -> None:
    ranks = results(ddp_run, "full")
    for name in ("gaussian", "gmm"):
        for key, value in ranks[0]["priors"][name].items():
            assert torch.equal(value, ranks[1]["priors"][name][key]), "same prior on every rank"

    model = load_method(ddp_run / "full" / "last.ckpt")
    assert sorted(model.posthoc_priors) == ["gaussian", "gmm"], "the last checkpoint holds them"
    data = SyntheticImages(**DATA)
    data.setup("fit")
    z = encode_dataset(model, DataLoader(data.train_dataset, batch_size=512), progress=False)
    assert z.shape == (90, 4)
    # codes differ from the DDP ones by float rounding only (other batch compositions)
    reference = {"gaussian": FullCovGaussian.fit(z),
                 "gmm": GaussianMixture.fit(z, n_components=N_COMPONENTS, seed=0)}
    for name, prior in reference.items():
        for key, value in prior.state_dict().items():
            torch.testing.assert_close(ranks[0]["priors"][name][key], value, rtol=1e-4,
                                       atol=1e-4, msg=f"{name}.{key}")
        torch.testing.assert_close(dict(model.posthoc_priors[name].state_dict()),
                                   ranks[0]["priors"][name])
