"""``genae study status``: counts, failed trials and the work done, read from a study's store.

The store is written by the real driver, with trials that run in-process (``fake_run``: no
training); a running trial's line (its step, claim and heartbeat, then its stale claim after
``kill -9``) is checked on a real study in tests/studies/test_local_study.py.
"""

import re
import time

import pytest

from genae_lightning.commands.study import study as study_command
from genae_lightning.studies import trial as trial_module
from genae_lightning.studies.run import Options, run_study
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.status import last_step, status_lines
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import TrialRun
from tests.studies.test_driver import InlineLauncher, fake_run


@pytest.fixture
def tiny():
    return load_study("tiny", check_classes=False)


def test_a_study_not_started_says_how_to_start_it(tiny, tmp_path) -> None:
    [line] = status_lines(tiny, tmp_path / "none")
    assert "nothing in" in line and f"genae study run tiny --root {tmp_path / 'none'}" in line
    assert not (tmp_path / "none").exists()  # status creates nothing


def test_done_failed_and_not_yet_recorded_trials_are_counted(tiny, tmp_path, monkeypatch,
                                                             capsys) -> None:
    def fail_beta_vae(self: TrialRun) -> None:
        if self.trial.method == "beta_vae":
            raise trial_module.TrialError("genae fit exited with status 1: boom")
        fake_run(self)
        self.record["timings"] = {"fit_seconds": 10.0 * (1 + self.trial.seed),
                                  "eval_seconds": 2.0}

    monkeypatch.setattr(TrialRun, "run", fail_beta_vae)
    run_study(tiny, tmp_path, InlineLauncher(), Options(retries=0, poll=0.01),
              log=lambda _: None)
    lines = study_command(["status", "tiny", "--root", str(tmp_path)])
    assert capsys.readouterr().out.splitlines() == lines  # printed as returned
    assert lines[0] == (f"study tiny in {tmp_path}: 4 of 6 trial(s) done, 0 running, "
                        "0 waiting, 2 failed")
    assert lines[1].startswith("failed")
    failed = sorted(line for line in lines if line.startswith("  test-beta_vae"))
    assert len(failed) == 2
    assert all(line.endswith(": 1 failure(s); TrialError: genae fit exited with status 1: boom")
               for line in failed)
    # AE: two selection trials (seed 0, 10 s each), seed 1's test (20 s); seed 0's test
    # reuses a selection run (no fit): 4 trials, 40 s of fit and 8 s of evaluation
    assert lines[-1] == ("done: 4 trial(s), 1 min of fit and evaluation; median fit per config "
                         "and budget: ae at 12 steps 10 s")


def test_trials_waiting_on_a_selection_are_counted_before_they_are_recorded(
        tiny, tmp_path) -> None:
    store = Store(tmp_path)
    store.init({"name": "tiny"})
    assert status_lines(tiny, tmp_path)[0] == (
        f"study tiny in {tmp_path}: 0 of 6 trial(s) done, 0 running, 0 waiting, 0 failed, 6 "
        "not recorded yet (they wait for a selection or the references' times)")


def test_the_step_of_a_run_comes_from_its_log_and_its_checkpoints(tmp_path) -> None:
    assert last_step(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch=0-step=250.ckpt").touch()
    assert last_step(tmp_path) == 250
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss\n0,49,1.0\n0,299,0.5\n,,\n")
    assert last_step(tmp_path) == 300  # step 299 is logged after 300 updates


def test_a_running_trial_s_line_says_its_step_of_its_budget(tiny, tmp_path) -> None:
    """Steps of a step budget; the step and the seconds of an equal-time budget."""
    from genae_lightning.studies.status import running_line

    store = Store(tmp_path)
    for tid, budget in (("steps", {"max_steps": 12, "max_seconds": None}),
                        ("timed", {"max_steps": 240, "max_seconds": 30.0})):
        (store.run_dir(tid) / "checkpoints").mkdir(parents=True)
        (store.run_dir(tid) / "checkpoints" / "step=6.ckpt").touch()
        record = {"id": tid, "trial": {"budget": budget, "reuses": None}}
        assert store.claim(tid) is not None
        line = running_line(store, record, now=time.time())
        assert re.search(r"claimed 0 min ago by .* pid \d+, heartbeat \d+ s ago$", line), line
        expected = {"steps": "  steps: step 6 of 12 (50%);",
                    "timed": "  timed: step 6, training for 30 s (equal time);"}[tid]
        assert line.startswith(expected), line
    (store.run_dir("steps") / "metrics.csv").write_text("epoch,step,prior/fit\n0,12,1.0\n")
    line = running_line(store, {"id": "steps", "trial": {"budget": {"max_steps": 12}}},
                        now=time.time())
    assert line.startswith("  steps: trained (12 steps), fitting the priors or evaluating;")


def test_the_time_left_comes_from_the_done_trials(tmp_path) -> None:
    """Same config and budget; else per step; equal time; reused runs; running trials."""
    from genae_lightning.studies.status import time_left

    def record(tid, state, method, max_steps, seconds=None, choices=(0,), reuses=None, **extra):
        trial = {"method": method, "budget": {"max_steps": max_steps, "max_seconds": seconds},
                 "evaluation": {"recalibrate_batchnorm": list(choices)}, "reuses": reuses}
        return {"id": tid, "state": state, "trial": trial, **extra}

    store = Store(tmp_path)
    (store.run_dir("running") / "checkpoints").mkdir(parents=True)
    (store.run_dir("running") / "checkpoints" / "step=50.ckpt").touch()
    records = [
        # done: 1 s per step, 10 s outside training, 10 s per evaluation (the first has two)
        record("a", "done", "ae", 100, choices=(0, 100), train_seconds=100.0, steps=100,
               timings={"overhead_seconds": 10.0, "eval_seconds": 20.0, "fit_seconds": 60.0}),
        record("b", "done", "ae", 200, train_seconds=200.0, steps=200,
               timings={"overhead_seconds": 10.0, "eval_seconds": 10.0}),
        record("c", "pending", "ae", 100),  # the median of its budget: 100 + 10 + 10
        record("d", "pending", "ae", 400),  # no such budget done: 400 steps x 1 s + 10 + 10
        record("e", "pending", "ae", 400, seconds=50),  # equal time: 50 + 10 + 10
        record("f", "pending", "ae", 100, reuses="a"),  # evaluates a's run: 10
        record("running", "running", "ae", 100),  # half done: (100 + 10) / 2 + 10
        record("g", "pending", "vae", 100),  # nothing to go by
        record("h", "failed", "ae", 100),  # not counted
    ]
    assert time_left(store, records, now=time.time()) == (120 + 420 + 70 + 10 + 65, 5, 1)


def test_status_says_the_time_left(tiny, tmp_path, monkeypatch) -> None:
    def timed_run(self: TrialRun) -> None:
        fake_run(self)
        self.record.update(train_seconds=600.0, timings={
            "fit_seconds": 650.0, "overhead_seconds": 50.0, "eval_seconds": 60.0})

    monkeypatch.setattr(TrialRun, "run", timed_run)
    run_study(tiny, tmp_path, InlineLauncher(), Options(poll=0.01), log=lambda _: None)
    assert not any(line.startswith("left:") for line in status_lines(tiny, tmp_path))
    store = Store(tmp_path)  # a trial of a config with nothing done: no estimate, said so
    done = next(r for r in store.records().values()
                if r["trial"]["phase"] == "test" and not r["trial"].get("reuses"))
    store.add({**done["trial"], "id": "test-unknown-s7", "method": "unknown", "seed": 7})
    [line] = [line for line in status_lines(tiny, tmp_path) if line.startswith("left:")]
    assert line == ("left: no estimate yet: none of the 1 recorded trial(s) to run has a done "
                    "trial of its config to go by")
    store.record_path("test-unknown-s7").unlink()
    # one more beta-VAE test trial, waiting
    done = next(r for r in store.records().values()
                if r["trial"]["phase"] == "test" and r["trial"]["method"] == "beta_vae")
    store.add({**done["trial"], "id": "test-beta_vae-synthetic-s7-extra", "seed": 7})
    [line] = [line for line in status_lines(tiny, tmp_path) if line.startswith("left:")]
    assert line == ("left: about 12 min of fit and evaluation for 1 recorded trial(s) to run "
                    "(one worker's time: divide by the workers; from the done trials' medians)")
