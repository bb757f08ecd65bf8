"""The driver and a trial's record, with trials that run in-process (no training).

``TrialRun.run`` is replaced by a stand-in that writes metrics as a fit and evaluation would,
so the driver's phases, retries and reruns are checked in milliseconds; the real trials run in
tests/studies/test_local_study.py.
"""

import pytest

from genae_lightning.studies import trial as trial_module
from genae_lightning.studies.plan import result_metrics, variant
from genae_lightning.studies.run import Options, run_study
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import Job, TrialRun, execute


class InlineLauncher:
    """Runs each job in this process, in submission order."""

    name, threads = "inline", None

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.ran: list[str] = []

    def submit(self, jobs) -> None:
        self.jobs += jobs

    def wait(self, on_result=None):
        jobs, self.jobs = self.jobs, []
        self.ran += [job.trial_id for job in jobs]
        results = [execute(job) for job in jobs]
        for result in results:
            if on_result is not None:
                on_result(result)
        return results

    def close(self) -> None:
        pass


def fake_run(self: TrialRun) -> None:
    """A trial's outcome without training: validation SSE = the latent dimension."""
    dim = dict(self.trial.point).get("model.init_args.latent_dim", 6)
    self.record.update(steps=self.trial.budget.max_steps, train_seconds=1.0,
                       checkpoint="runs/x/checkpoints/last.ckpt", run_dir="runs/x")
    self.record["metrics"] = {variant(c): {"val/rec_sse": float(dim + self.trial.seed)}
                              for c in self.trial.evaluation.recalibrate_batchnorm}


@pytest.fixture
def study():
    return load_study("tiny", check_classes=False)


def test_a_study_runs_selects_and_tests_then_a_rerun_runs_nothing(study, tmp_path,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(TrialRun, "run", fake_run)
    launcher = InlineLauncher()
    state = run_study(study, tmp_path, launcher, Options(poll=0.01), log=lambda _: None)
    assert state.count("done") == 6 and len(launcher.ran) == 6
    chosen = state.selections[("ae", "synthetic")]
    assert dict(chosen.point) == {"model.init_args.latent_dim": 4} and chosen.value == 4.0
    tests = {r["id"]: result_metrics(r) for r in state.records.values()
             if r["trial"]["phase"] == "test"}
    assert sorted(m["val/rec_sse"] for m in tests.values()) == [4.0, 5.0, 6.0, 7.0]
    again = InlineLauncher()
    assert run_study(study, tmp_path, again, Options(), log=lambda _: None).count("done") == 6
    assert again.ran == []


def test_a_failing_trial_is_recorded_and_retried_up_to_n_times(study, tmp_path,
                                                               monkeypatch) -> None:
    def fail(self: TrialRun) -> None:
        if self.trial.method == "beta_vae":
            raise trial_module.TrialError("genae fit exited with status 1: boom")
        fake_run(self)

    monkeypatch.setattr(TrialRun, "run", fail)
    launcher = InlineLauncher()
    state = run_study(study, tmp_path, launcher, Options(retries=1, poll=0.01),
                      log=lambda _: None)
    assert state.count("done") == 4 and state.count("failed") == 2
    failed = [r for r in state.records.values() if r["state"] == "failed"]
    for record in failed:
        assert record["failures"] == record["attempts"] == 2
        assert record["error"] == "TrialError: genae fit exited with status 1: boom"
        assert [e["attempt"] for e in record["errors"]] == [1, 2]
    assert sum(tid.startswith("test-beta_vae") for tid in launcher.ran) == 4
    more = InlineLauncher()  # a rerun with more retries tries them once more
    monkeypatch.setattr(TrialRun, "run", fake_run)
    assert run_study(study, tmp_path, more, Options(retries=2), log=lambda _: None
                     ).count("done") == 6
    assert sorted(more.ran) == sorted(r["id"] for r in failed)


def test_a_trial_held_elsewhere_is_skipped_and_a_dead_holder_counts_as_a_failure(
        study, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(TrialRun, "run", fake_run)
    store = Store(tmp_path)
    store.init({"name": "tiny"})
    trial = "t"
    store.add({"id": trial})
    store.add({"id": trial})  # a second add changes nothing
    claim = store.claim(trial)
    assert execute(Job(str(tmp_path), trial)).outcome == "skipped"
    record = store.read(trial)
    record.update(state="running", attempts=1, worker={"host": "h", "pid": 1})
    store.write(record, claim)
    claim.release()  # as if its worker died: the record says running, nobody holds it
    monkeypatch.setattr(trial_module.Trial, "from_json", classmethod(
        lambda cls, data: load_trial(study)))
    assert execute(Job(str(tmp_path), trial)).outcome == "done"
    record = store.read(trial)
    assert record["failures"] == 1 and record["attempts"] == 2 and record["state"] == "done"
    assert "stopped during the trial" in record["errors"][0]["error"]


def load_trial(study):
    from genae_lightning.studies.plan import selection_trials

    return selection_trials(study)[0]


def test_a_config_whose_selection_failed_is_not_tested(study, tmp_path, monkeypatch) -> None:
    def fail_ae_grid(self: TrialRun) -> None:
        if self.trial.phase == "select":
            raise trial_module.TrialError("diverged")
        fake_run(self)

    monkeypatch.setattr(TrialRun, "run", fail_ae_grid)
    lines: list[str] = []
    state = run_study(study, tmp_path, InlineLauncher(), Options(retries=0), log=lines.append)
    assert ("ae", "synthetic") not in state.selections
    assert [t.method for t in state.trials if t.phase == "test"] == ["beta_vae"] * 2
    assert any(line.startswith("no selection for ae on synthetic") for line in lines)
