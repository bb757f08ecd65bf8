"""Stopping a local study with SIGTERM (or Ctrl-C) keeps the running fit's work.

The driver alone gets SIGTERM, as from ``kill <pid>`` or a scheduler: it asks its workers to
stop, each running fit saves ``interrupted.ckpt`` and exits with status 3, the trial is
recorded ``pending`` (not a failure), and the driver exits with status 3. Run again, the study
resumes the fit from that checkpoint. Real processes: the driver, its pool and ``genae fit``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genae_lightning.studies.spec import study_dir
from genae_lightning.studies.store import Store
from tests.conftest import REPO


def one_long_trial(tmp_path: Path) -> Path:
    """``tiny`` reduced to one AE trial of 400 steps, checkpointed every 50."""
    study = yaml.safe_load((study_dir() / "tiny.yaml").read_text())
    study.update(name="tiny_stop", configs={"ae": "ae_mnist"}, seeds=[0],
                 selection={"seed": 0, "metric": "val/rec_sse"}, budgets={"max_steps": [400]})
    study["overrides"]["trainer.callbacks"][0]["init_args"]["every_n_train_steps"] = 50
    path = tmp_path / "tiny_stop.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def driver(study: Path, root: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "genae_lightning.cli", "study", "run", str(study), "--root",
         str(root), "--workers", "1", "--heartbeat", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # the signal below reaches the driver alone


@pytest.mark.slow  # ~1 min: `make test-slow`
def test_sigterm_to_the_driver_checkpoints_the_running_fit_and_the_rerun_resumes_it(
        tmp_path) -> None:
    study, root = one_long_trial(tmp_path), tmp_path / "root"
    first = driver(study, root)
    store, trial, child = Store(root), None, None
    deadline = time.monotonic() + 300
    while child is None and time.monotonic() < deadline and first.poll() is None:
        for tid in (store.trial_ids() if (root / "trials").is_dir() else []):
            record = store.read(tid) or {}
            saved = list((store.run_dir(tid) / "checkpoints").glob("*step=*.ckpt"))
            if record.get("state") == "running" and saved and (record.get("worker") or {}
                                                               ).get("child"):
                trial, child = tid, record["worker"]["child"]
        time.sleep(0.05)
    assert child is not None, first.communicate()[0]
    os.kill(first.pid, signal.SIGTERM)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 3, out
    assert "stopped; run the same command again to continue" in out, out
    record = store.read(trial)
    assert record["state"] == "pending" and record["failures"] == 0, record
    assert record["fit"]["exit_codes"] == [3], record["fit"]
    checkpoint = store.run_dir(trial) / "checkpoints" / "interrupted.ckpt"
    assert checkpoint.is_file()
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()

    again = driver(study, root)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    record = store.read(trial)
    assert record["state"] == "done" and record["failures"] == 0 and record["steps"] == 400
    assert record["fit"]["exit_codes"] == [3, 0]
    assert record["fit"]["resumed_from"] == [str(checkpoint)]
