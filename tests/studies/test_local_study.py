"""The bundled ``tiny`` study end to end through the local launcher, in subprocesses.

One uninterrupted study (two drivers started at once on one root: they split the trials and
train none twice) is the reference; a rerun trains nothing; a study whose driver and a worker
are killed (``kill -9``) mid-trial and then restarted ends with the same numbers. One test
runs them in turn (each check is a function below), so that ``pytest -n auto`` runs the
reference study once.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genae_lightning.studies.plan import Trial, selection_trials
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.status import status_lines
from genae_lightning.studies.store import Store, read_claim
from tests.conftest import REPO

FIT_LINE = "-m genae_lightning.cli fit"


def driver(root: Path, *extra: str) -> subprocess.Popen:
    """``genae study run tiny`` in a subprocess (one worker: the other core is the other's)."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "genae_lightning.cli", "study", "run", "tiny", "--root",
         str(root), "--workers", "1", "--poll", "0.3", "--heartbeat", "1", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def fits_started(store: Store, trial_id: str) -> int:
    log = store.run_dir(trial_id) / "fit.log"
    return log.read_text().count(FIT_LINE) if log.is_file() else 0


def numbers(store: Store) -> dict[str, tuple]:
    """Every trial's metrics and steps (what must not depend on interruptions)."""
    return {tid: (r["state"], r.get("steps"), r.get("metrics")) for tid, r in
            store.records().items()}


@pytest.mark.slow  # ~210 s: `make test-slow`, which CI runs after `make test`
def test_the_tiny_study_end_to_end(tmp_path) -> None:
    root = tmp_path / "reference" / "tiny"
    first, second = driver(root), driver(root)  # two drivers at once on one study
    outputs = finish(first) + finish(second)
    assert "6 of 6 trial(s) done" in outputs, outputs
    reference = Store(root)
    check_every_trial_ran_once(reference)
    check_the_selection_and_its_tests(reference)
    check_a_rerun_trains_nothing(reference)
    check_a_killed_study_resumes_to_the_same_numbers(reference, tmp_path / "killed")


def check_every_trial_ran_once(reference: Store) -> None:
    records = reference.records()
    assert len(records) == 6 and all(r["state"] == "done" for r in records.values())
    for tid, record in records.items():
        assert record["attempts"] == 1 and record["failures"] == 0, tid
        assert fits_started(reference, tid) == (0 if record.get("reused") else 1), tid
    assert not list((reference.root / "claims").iterdir())  # every claim released


def check_the_selection_and_its_tests(reference: Store) -> None:
    """The lowest validation metric is selected; the test trials use it, one reuses its run."""
    study = load_study("tiny")
    records = reference.records()
    grid = [records[t.id] for t in selection_trials(study)]
    values = {r["id"]: r["metrics"]["recalibrate_batchnorm=0"]["val/rec_sse"] for r in grid}
    best = min(values, key=values.get)
    selection = json.loads((reference.root / "selection.json").read_text())
    ae = next(s for s in selection["selected"] if s["method"] == "ae")
    assert ae["trial"] == best and ae["value"] == values[best]
    tests = [Trial.from_json(r["trial"]) for r in records.values() if r["trial"]["phase"] == "test"]
    assert sorted((t.method, t.seed) for t in tests) == [("ae", 0), ("ae", 1), ("beta_vae", 0),
                                                         ("beta_vae", 1)]
    for trial in tests:
        if trial.method == "ae":
            assert dict(trial.point) == ae["point"]
            assert (trial.reuses == best) == (trial.seed == 0)
        assert trial.split == "test" and records[trial.id]["steps"] == 12
    reused = next(t for t in tests if t.reuses)
    assert records[reused.id]["checkpoint"] == records[best]["checkpoint"]
    for record in records.values():
        timings = record["timings"]
        assert record["train_seconds"] > 0 and timings["fit_seconds"] > timings["start_seconds"]
        assert timings["eval_seconds"] >= 0


def check_a_rerun_trains_nothing(reference: Store) -> None:
    before = {p: p.stat().st_mtime_ns for p in (reference.root / "trials").iterdir()}
    out = finish(driver(reference.root))
    assert "6 of 6 trial(s) done" in out and "done     " not in out, out
    assert {p: p.stat().st_mtime_ns for p in (reference.root / "trials").iterdir()} == before


def check_a_killed_study_resumes_to_the_same_numbers(reference: Store, folder: Path) -> None:
    """The store of a study stopped before its last trial (beta-VAE, seed 1): run it, kill -9
    the worker and the driver while its fit is mid-way, restart, compare every trial."""
    root = folder / "tiny"
    shutil.copytree(reference.root, root)
    store = Store(root)
    removed = [tid for tid in store.trial_ids() if tid.startswith("test-beta_vae-synthetic-s1")]
    for tid in removed:
        store.record_path(tid).unlink()
        shutil.rmtree(store.run_dir(tid))
    first = driver(root)
    victim, record = None, None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline:
        for tid in removed:  # a fit that checkpointed before its last step
            steps = [int(p.stem.split("step=")[1]) for p in
                     (store.run_dir(tid) / "checkpoints").glob("*step=*.ckpt")]
            record = store.read(tid)
            if steps and max(steps) < 12 and record and record["state"] == "running":
                victim = tid
                break
        time.sleep(0.05)
    assert victim is not None, first.communicate()[0]
    worker, child = record["worker"]["pid"], record["worker"]["child"]
    assert read_claim(store.claim_path(victim))["pid"] == worker
    study = load_study("tiny")
    running = "\n".join(status_lines(study, root))  # as `genae study status` prints it
    assert "trial(s) done, 1 running" in running, running
    assert re.search(rf"  {victim}: step \d+ of 12 \(\d+%\); claimed .* by .* pid {worker}, "
                     r"heartbeat \d+ s ago\n", running + "\n"), running
    os.kill(worker, signal.SIGKILL)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    # the worker is gone (dead, or a zombie until reaped): its claim is stale at once here
    stale = "\n".join(status_lines(study, root))
    assert f"pid {worker}" in stale and "(stale: its worker is gone" in stale, stale
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the fit dies with its worker
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    out = finish(driver(root))
    assert "6 of 6 trial(s) done" in out, out
    resumed = store.read(victim)
    assert resumed["fit"]["resumed_from"] and resumed["failures"] == 1, resumed
    assert "stopped during the trial" in resumed["errors"][0]["error"]
    assert numbers(store) == numbers(reference)
    done = status_lines(study, root)
    assert done[0].startswith("study tiny in ") and ": 6 of 6 trial(s) done, 0 running, 0 " \
        "waiting, 0 failed" in done[0] and "running:" not in done, done
