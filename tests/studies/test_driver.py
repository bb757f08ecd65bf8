"""The driver and a trial's record, with trials that run in-process (no training).

``TrialRun.run`` is replaced by a stand-in that writes metrics as a fit and evaluation would,
so the driver's phases, retries and reruns are checked in milliseconds; the real trials run in
tests/studies/test_local_study.py.
"""

import json
from dataclasses import replace

import pytest

from genae_lightning.studies import run as run_module
from genae_lightning.studies import trial as trial_module
from genae_lightning.studies.definition import EqualTime
from genae_lightning.studies.plan import (
    result_metrics,
    select,
    selection_trials,
    test_trials,
    time_trials,
    variant,
)
from genae_lightning.studies.run import Options, run_study
from genae_lightning.studies.spec import StudyError, load_study
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import Job, TrialRun, execute


class InlineLauncher:
    """Runs each job in this process, in submission order (jobs submitted while it waits, too).

    ``events`` is what happened, in order: ``("submit", trial id)`` and ``("end", trial id)``.
    ``pick`` chooses which queued job runs next (default: the first).
    """

    name, threads = "inline", None

    def __init__(self, pick=None) -> None:
        self.jobs: list[Job] = []
        self.ran: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.pick = pick or (lambda jobs: 0)

    def submit(self, jobs) -> None:
        self.jobs += jobs
        self.events += [("submit", job.trial_id) for job in jobs]

    def wait(self, on_result=None):
        results = []
        while self.jobs:
            job = self.jobs.pop(self.pick(self.jobs))
            self.ran.append(job.trial_id)
            results.append(execute(job))
            self.events.append(("end", job.trial_id))
            if on_result is not None:
                on_result(results[-1])
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
    assert [env["attempt"] for env in record["environments"]] == [2]  # the one run here


def load_trial(study):
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


def submitted_before(events: list[tuple[str, str]], prefix: str, event: tuple[str, str]) -> int:
    """How many trials whose id starts with ``prefix`` were submitted before ``event``."""
    return sum(kind == "submit" and tid.startswith(prefix)
               for kind, tid in events[:events.index(event)])


def test_a_config_without_a_grid_is_tested_while_the_other_selects(study, tmp_path,
                                                                   monkeypatch) -> None:
    """beta-VAE has nothing to select: its test trials are submitted with AE's selection trials,
    before any of them ends; AE's test trials follow its own selection, before beta-VAE's tests
    end; the trials, selection and numbers are those of phase after phase."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    launcher = InlineLauncher()
    lines: list[str] = []
    state = run_study(study, tmp_path, launcher, Options(poll=0.01), log=lines.append)
    events = launcher.events
    grid = [t.id for t in selection_trials(study)]
    first_end = next(e for e in events if e[0] == "end")
    assert first_end == ("end", grid[0])
    assert submitted_before(events, "select-ae", first_end) == 2
    assert submitted_before(events, "test-beta_vae", first_end) == 2
    assert submitted_before(events, "test-ae", ("end", grid[1])) == 0  # not before its selection
    beta_ends = [e for e in events if e[0] == "end" and e[1].startswith("test-beta_vae")]
    assert submitted_before(events, "test-ae", beta_ends[0]) == 2
    assert [kind for kind, tid in events].count("submit") == 6 == len(set(launcher.ran))
    assert lines.index("test beta_vae on synthetic: 2 trial(s)") < lines.index(
        next(line for line in lines if line.startswith("  done")))
    # the same trials as phase after phase: the selection's tests, with the selected point
    records = {r["id"]: r for r in state.records.values()}
    selected = select(study, selection_trials(study), records, grid)
    assert [t.id for t in state.trials] == grid + [t.id for t in test_trials(study, selected)]
    assert state.selections == selected
    assert json.loads((tmp_path / "selection.json").read_text())["selected"][0]["trial"] == \
        grid[0]


def test_a_selection_waits_for_every_one_of_its_trials(study, tmp_path, monkeypatch) -> None:
    """Jobs end newest first: AE's first grid point ends last, and only then are its tests
    added; the selection is the same."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    launcher = InlineLauncher(pick=lambda jobs: len(jobs) - 1)
    state = run_study(study, tmp_path, launcher, Options(poll=0.01), log=lambda _: None)
    grid = [t.id for t in selection_trials(study)]
    events = launcher.events
    assert events.index(("end", grid[1])) < events.index(("end", grid[0]))
    assert submitted_before(events, "test-ae", ("end", grid[0])) == 0
    assert submitted_before(events, "test-ae", events[-1]) == 2
    assert state.selections["ae", "synthetic"].trial == grid[0] and state.count("done") == 6


def test_equal_time_trials_start_once_the_references_and_the_selection_are_known(
        study, tmp_path, monkeypatch) -> None:
    """beta-VAE is the reference: once its two test trials are done (1 s each), AE's equal-time
    trials are submitted, before AE's own test trials have ended."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    timed = replace(study, equal_time=EqualTime(("beta_vae",), (12,), 20))
    launcher = InlineLauncher()
    lines: list[str] = []
    state = run_study(timed, tmp_path, launcher, Options(poll=0.01), log=lines.append)
    events = launcher.events
    beta_ends = [e for e in events if e[0] == "end" and e[1].startswith("test-beta_vae")]
    ae_test_ends = [e for e in events if e[0] == "end" and e[1].startswith("test-ae")]
    timed_ids = [t.id for t in time_trials(timed, state.selections, {("synthetic", 12): 1})]
    assert len(timed_ids) == 2 and state.count("done") == 8
    first_timed = events.index(("submit", timed_ids[0]))
    assert events.index(beta_ends[-1]) < first_timed < events.index(ae_test_ends[0])
    assert "equal wall-clock budget on synthetic: 1 s (the references at 12 steps)" in lines
    assert [t.id for t in state.trials][-2:] == timed_ids  # phase order in the state


def test_a_restarted_study_whose_tests_are_done_runs_its_equal_time_trials(
        study, tmp_path, monkeypatch) -> None:
    """Stopped once the references' tests were done but before any equal-time trial was
    recorded: the next driver adds and runs them (it used to stop, every known trial done)."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    timed = replace(study, equal_time=EqualTime(("beta_vae",), (12,), 20))
    state = run_study(timed, tmp_path, InlineLauncher(), Options(poll=0.01), log=lambda _: None)
    store = Store(tmp_path)
    timed_ids = [t.id for t in state.trials if t.budget.max_seconds is not None]
    assert len(timed_ids) == 2
    for tid in timed_ids:  # as if the driver had stopped before recording them
        store.record_path(tid).unlink()
    lines: list[str] = []
    state = run_study(timed, tmp_path, launcher := InlineLauncher(), Options(poll=0.01),
                      log=lines.append)
    assert sorted(launcher.ran) == sorted(timed_ids) and state.count("done") == 8
    assert "equal wall-clock budget on synthetic: 1 s (the references at 12 steps)" in lines


def test_the_fid_features_are_checked_before_any_trial(study, tmp_path, monkeypatch) -> None:
    """A missing classifier file, or Inception without obtainable weights, stops the study
    before it trains anything (not at the first evaluation, after a training)."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    missing = replace(study, evaluation=replace(study.evaluation, feature="none/here.pt"))
    launcher = InlineLauncher()
    with pytest.raises(StudyError) as raised:
        run_study(missing, tmp_path / "a", launcher, Options(), log=lambda _: None)
    for message in (str(study.source), "evaluation.feature:", "'none/here.pt'", "no such file"):
        assert message in str(raised.value), str(raised.value)
    assert launcher.ran == [] and not (tmp_path / "a" / "trials").exists()
    monkeypatch.setenv("GENAE_OFFLINE", "1")  # an offline machine without cached weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    inception = replace(study, evaluation=replace(study.evaluation, feature="inception"))
    with pytest.raises(StudyError) as raised:
        run_study(inception, tmp_path / "b", launcher, Options(), log=lambda _: None)
    for message in (str(study.source), "evaluation.feature: 'inception'",
                    "Inception-v3 weights are not available", str(tmp_path / "torch"),
                    "In a study file, give the file's path as evaluation."
                    "feature_extractor_weights_path."):
        assert message in str(raised.value), str(raised.value)
    assert launcher.ran == [] and not (tmp_path / "b" / "trials").exists()


def test_a_damaged_weights_file_is_named_before_any_trial(study, tmp_path) -> None:
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"not a checkpoint")
    inception = replace(study, evaluation=replace(
        study.evaluation, feature="inception", feature_extractor_weights_path=str(weights)))
    launcher = InlineLauncher()
    with pytest.raises(StudyError) as raised:
        run_study(inception, tmp_path / "a", launcher, Options(), log=lambda _: None)
    for message in (str(study.source), "evaluation.feature_extractor_weights_path:",
                    str(weights), "could not be loaded", "fix or replace the file"):
        assert message in str(raised.value), str(raised.value)
    assert launcher.ran == []


def test_the_inception_weights_file_reaches_every_evaluation(study, tmp_path,
                                                             monkeypatch) -> None:
    """`evaluation.feature_extractor_weights_path` is loaded once by the driver, then given
    to every evaluation as `genae evaluate --feature_extractor_weights_path` (made absolute)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pth").write_bytes(b"")
    loaded, evaluated = [], []
    monkeypatch.setattr(run_module, "load_features", loaded.append)

    def fit(self: TrialRun) -> None:  # no training: the evaluation's arguments are checked
        run_dir = self.store.run_dir(self.trial.id)
        run_dir.mkdir(parents=True)
        self.record.update(checkpoint=self.relative(run_dir / "last.ckpt"),
                           run_dir=self.relative(run_dir), steps=12, train_seconds=1.0)

    def evaluate(args: list[str]) -> dict:
        evaluated.append(args)
        return {"metrics": {"val/rec_sse": 1.0}, "global_step": 12, "batchnorm": None}

    monkeypatch.setattr(TrialRun, "fit", fit)
    monkeypatch.setattr(trial_module, "evaluate", evaluate)
    inception = replace(study, evaluation=replace(
        study.evaluation, feature="inception", feature_extractor_weights_path="w.pth"))
    state = run_study(inception, tmp_path / "root", InlineLauncher(), Options(),
                      log=lambda _: None)
    assert state.count("done") == 6 and len(evaluated) == 6
    assert [e.feature_extractor_weights_path for e in loaded] == ["w.pth"]
    for args in evaluated:
        assert f"--feature_extractor_weights_path={tmp_path / 'w.pth'}" in args
        assert "--fid_feature=inception" in args


def test_the_largest_step_budget_is_submitted_first(study, tmp_path, monkeypatch) -> None:
    """With budgets of 12 and 24 steps, each config's 24-step test trials are queued before its
    12-step ones (the pool ends on its short trials); selection trials still come first."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    two = replace(study, max_steps=(12, 24), selection_steps=12)
    launcher = InlineLauncher()
    state = run_study(two, tmp_path, launcher, Options(poll=0.01), log=lambda _: None)
    assert state.count("done") == 10
    steps = {t.id: t.budget.max_steps for t in state.trials}
    phases = {t.id: t.phase for t in state.trials}
    submitted = [tid for kind, tid in launcher.events if kind == "submit"]
    assert [phases[t] for t in submitted[:2]] == ["select", "select"]
    for method in ("ae", "beta_vae"):
        order = [steps[t] for t in submitted if phases[t] == "test" and f"-{method}-" in t]
        assert order == [24, 24, 12, 12], (method, order)


def test_a_reference_trained_again_keeps_the_recorded_equal_time_column(
        study, tmp_path, monkeypatch) -> None:
    """A reference trial whose record was removed (to train it again) comes back with another
    time; the equal-time trials keep the budget they were given and are not trained again."""
    monkeypatch.setattr(TrialRun, "run", fake_run)
    timed = replace(study, equal_time=EqualTime(("beta_vae",), (12,), 20))
    state = run_study(timed, tmp_path, InlineLauncher(), Options(poll=0.01), log=lambda _: None)
    timed_ids = sorted(t.id for t in state.trials if t.budget.max_seconds is not None)
    again = next(t.id for t in state.trials if t.id.startswith("test-beta_vae"))
    Store(tmp_path).record_path(again).unlink()

    def slower(self: TrialRun) -> None:  # the rerun takes 5 s: the median would become 3 s
        fake_run(self)
        self.record["train_seconds"] = 5.0

    monkeypatch.setattr(TrialRun, "run", slower)
    lines: list[str] = []
    state = run_study(timed, tmp_path, launcher := InlineLauncher(), Options(poll=0.01),
                      log=lines.append)
    assert launcher.ran == [again] and state.count("done") == 8
    assert sorted(t.id for t in state.trials if t.budget.max_seconds is not None) == timed_ids
    assert ("equal wall-clock budget on synthetic: 1 s (the references at 12 steps, as its "
            "trials recorded it)") in lines
