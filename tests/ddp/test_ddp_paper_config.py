"""A 2-process CPU DDP `genae fit` of a bundled paper config finishes, with all its callbacks.

The paper trainer's callbacks (ModelCheckpoint, FitLatentPrior, GenerativeMetrics, ImageLogger),
``genae fit``'s guards (GracefulInterrupt, NonFiniteGuard) and InjFlowDiagnostics all run their
end-of-fit work on both processes: a collective call (``trainer.log_dir``, a broadcast, a
barrier, a gather) made on rank 0 only once left the run waiting forever at its end. The run is
a subprocess with a time limit, killed with its rank-1 child when it hangs.
"""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genae_lightning.features import SmallClassifier
from genae_lightning.methods import load_method

REPO = Path(__file__).resolve().parents[2]
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
TIME_LIMIT_S = 240  # the run takes about 30 s on 2 CPU cores


def genae_command() -> list[str]:
    """``genae`` as a user runs it: the installed console script, else the module."""
    script = Path(sys.executable).with_name("genae")
    return [sys.executable, str(script)] if script.is_file() else [
        sys.executable, "-c", "from genae_lightning.cli import main; main()"]


def launch_environment() -> dict[str, str]:
    """This environment without a launcher's variables (Lightning would join that job)."""
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARIABLES and not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    return env | {"WANDB_MODE": "offline", "GENAE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_with_time_limit(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on a hang kill the group and fail."""
    process = subprocess.Popen(command, cwd=REPO, env=launch_environment(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # both ranks (SIGTERM is a graceful interrupt)
        output, _ = process.communicate()
        pytest.fail(f"the 2-process fit did not finish within {timeout} s (a collective call "
                    f"made on some ranks only?); its output ends with:\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture(scope="module")
def ddp_fit(tmp_path_factory) -> Path:
    """Run the 2-process fit once for the module; return its run folder."""
    root = tmp_path_factory.mktemp("ddp_paper")
    classifier = SmallClassifier((1, 28, 28), 10, width=4, num_features=8).save(
        root / "classifier.pt", dataset="SyntheticImages")
    command = [
        *genae_command(), "fit", "--config", "injflow_mnist",
        "--data", "genae_lightning.data.SyntheticImages", "--data.num_samples=64",
        "--data.batch_size=8", "--model.init_args.backbone.init_args.width=0.125",
        "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
        "--trainer.callbacks+=genae_lightning.callbacks.InjFlowDiagnostics",
        "--trainer.callbacks.every_n_steps=1", "--trainer.callbacks.num_examples=4",
        "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false", "--trainer.default_root_dir", str(root / "out"),
        "--fid_feature", str(classifier),
    ]
    result = run_with_time_limit(command, TIME_LIMIT_S)
    assert result.returncode == 0, result.stdout[-4000:]
    (folder,) = (root / "out" / "injflow_mnist").glob("version_*")  # one run, not one a rank
    return folder


def test_the_run_leaves_its_grids(ddp_fit) -> None:
    for name in ("recon", "samples_standard", "samples_gaussian", "samples_gmm"):
        grid = np.asarray(Image.open(ddp_fit / f"{name}.png"))
        assert grid.max() > 0, name
    assert (ddp_fit / "injflow_spectrum.png").is_file()  # InjFlowDiagnostics, on rank 0


def test_the_checkpoint_holds_the_posthoc_priors(ddp_fit) -> None:
    model = load_method(ddp_fit / "checkpoints" / "last.ckpt")
    assert sorted(model.posthoc_priors) == ["gaussian", "gmm"]
    assert model.batchnorm_check is not None and model.batchnorm_check["step"] == 2


def test_the_end_of_fit_metrics_are_logged(ddp_fit) -> None:
    with open(ddp_fit / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    final = {k: v for row in rows for k, v in row.items() if v}
    assert {"cfid/recon", "cfid/gmm", "knn/acc", "val/rec_sse", "diag/logdet_exact"} <= set(final)
