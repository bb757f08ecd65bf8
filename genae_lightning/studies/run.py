"""The study driver: expand the study, run its trials through a launcher, select, test.

:func:`run_study` runs the phases of :mod:`~genae_lightning.studies.plan` per config, not as
barriers across the study: the selection trials of every config with a choice and the test
trials of every config without one are submitted at once; a config's test trials are added as
soon as its own selection is decided (every one of its selection trials settled), while other
configs' selection trials still run; the equal wall-clock trials as soon as the references'
test trials are done (and the config's selection is known). Each trial is added to the store as
``pending`` when it becomes known (never overwriting a record), and submitted while it may run
(not done, not out of retries, not held by a live claim, not already submitted by this driver).
The driver does that after each job that ends (``on_result``: the launcher's ``wait`` takes the
jobs submitted meanwhile too), so the workers never wait for a phase's slowest trial; trials
held by another driver's workers are waited for by polling the store. Which trials exist, their
seeds, the selected settings and so the numbers are those of phase after phase; only the order
in which the trials run differs. So:

- running a study again continues where it stopped (done trials are skipped, stopped ones
  resume from their checkpoints, failed ones are retried while retries are left);
- two drivers on one study (on one machine or many, sharing the root) split the trials between
  them and never train one twice: the store's claims decide who runs each.

The selection is written to ``<root>/selection.json`` (config/dataset -> grid point, choice,
selection trial, validation value) each time a config's is decided, for ``genae study report``.

Before any trial, :func:`preflight` checks the study's FID features: the files it names exist,
and the feature extractor loads (Inception: its weights are found, or downloaded once here), so
a study that could not be evaluated fails at once, not after its first training.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genae_lightning.studies.definition import Evaluation, Study
from genae_lightning.studies.launchers import Launcher
from genae_lightning.studies.plan import (
    Selection,
    Trial,
    equal_time_seconds,
    point_label,
    recorded_equal_time,
    select,
    selection_trials,
    test_trials,
    time_trials,
    variant,
)
from genae_lightning.studies.spec import INCEPTION, StudyError, check_files
from genae_lightning.studies.store import DEFAULT_HEARTBEAT, DEFAULT_LEASE, Store, write_json
from genae_lightning.studies.trial import Job, JobResult


@dataclass
class Options:
    """How a driver runs the trials (none of it changes a trial's numbers).

    Attributes:
        retries: A failed trial runs again while its failures are at most this many.
        lease: Seconds without a heartbeat after which a claim is stale.
        heartbeat: Seconds between a worker's heartbeats.
        poll: Seconds between looks at the store while other drivers' workers hold trials.
        data_root: Where the data lies on this machine (``data.init_args.root``), or None.
    """

    retries: int = 2
    lease: float = DEFAULT_LEASE
    heartbeat: float = DEFAULT_HEARTBEAT
    poll: float = 5.0
    data_root: str | None = None


@dataclass
class StudyState:
    """Where a study stands after :func:`run_study`.

    Attributes:
        trials: Every trial expanded so far (selection, test, equal time).
        records: Their records, by id.
        selections: The selected setting per (config label, dataset label).
        results: The job results of this driver's launches, in order.
    """

    trials: list[Trial] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    selections: dict[tuple[str, str | None], Selection] = field(default_factory=dict)
    results: list[JobResult] = field(default_factory=list)

    def count(self, state: str) -> int:
        """Trials in ``state``."""
        return sum(self.records.get(t.id, {}).get("state") == state for t in self.trials)

    def busy_seconds(self) -> float:
        """Worker seconds of the trials this driver ran to the end: fits and evaluations."""
        total = 0.0
        for result in self.results:
            record = self.records.get(result.trial_id) or {}
            timings = record.get("timings") or {}
            if result.outcome == "done":
                total += timings.get("eval_seconds") or 0.0
                total += 0.0 if record.get("reused") else timings.get("fit_seconds") or 0.0
        return total


def runnable(record: dict[str, Any] | None, retries: int) -> bool:
    """Whether a trial may run (again): not done, and not out of retries."""
    return record is not None and record["state"] != "done" and record["failures"] <= retries


def settled(record: dict[str, Any] | None, retries: int) -> bool:
    """Whether a trial will not run again: done, or failed more than ``retries`` times."""
    return record is not None and (record["state"] == "done" or (
        record["state"] == "failed" and record["failures"] > retries))


def study_record(study: Study) -> dict[str, Any]:
    """What ``study.json`` keeps of the study: its name, file and the file's text."""
    return {"name": study.name, "source": str(study.source),
            "text": study.source.read_text(encoding="utf-8")}


def load_features(evaluation: Evaluation) -> None:
    """Build the FID feature extractor the trials' evaluations will build, once, and drop it.

    Inception: its weights file is found (``feature_extractor_weights_path`` or the torch.hub
    cache) or downloaded, and the network loads it; a classifier file loads. Seconds, against a
    trial's minutes to hours.

    Raises:
        FileNotFoundError: The Inception weights cannot be had (offline, not cached).
        Exception: Whatever loading a damaged file raises.
    """
    from genae_lightning.features.extractors import resolve_feature
    from genae_lightning.metrics.fid import FID

    if evaluation.feature in INCEPTION:
        FID(evaluation.feature, evaluation.feature_extractor_weights_path, disk_cache=False,
            progress=False)
    elif evaluation.feature is not None:
        resolve_feature(evaluation.feature)


def preflight(study: Study, load: bool = True) -> None:
    """Check, before any trial runs, that the study's evaluations can compute their FIDs.

    The files the evaluation names exist (:func:`~genae_lightning.studies.spec.check_files`),
    and with ``load`` the feature extractor loads (:func:`load_features`).

    Raises:
        StudyError: Named with the study file, the key, the value and the fix.
    """
    check_files(study)
    evaluation = study.evaluation
    if not load or evaluation.feature is None:
        return
    key = "evaluation.feature_extractor_weights_path" if (
        evaluation.feature_extractor_weights_path is not None) else "evaluation.feature"
    value = evaluation.feature_extractor_weights_path or evaluation.feature
    try:
        load_features(evaluation)
    except FileNotFoundError as err:
        fix = (" In a study file, give the file's path as evaluation."
               "feature_extractor_weights_path." if evaluation.feature in INCEPTION else "")
        raise StudyError(f"{study.source}: {key}: {value!r}: {err}{fix}") from None
    except Exception as err:  # a damaged or foreign file; missing packages
        raise StudyError(
            f"{study.source}: {key}: {value!r}: the FID features could not be loaded "
            f"({type(err).__name__}: {err}); fix or replace the file (evaluation.feature: "
            "'inception', a `genae train-features` file or null)") from err


def run_study(study: Study, root: str | Path, launcher: Launcher, options: Options | None = None,
              log: Callable[[str], None] = print, check: bool = True) -> StudyState:
    """Run (or continue) a study in ``root`` with ``launcher``; returns where it stands.

    ``check``: first :func:`preflight` (False when the caller has just done it).
    """
    if check:
        preflight(study)
    options = options or Options()
    store = Store(root, options.lease)
    store.init(study_record(study))
    driver = Driver(study, store, launcher, options, log)
    driver.run()
    return driver.state


class Driver:
    """Runs a study's trials through a launcher, each config's as soon as they are known.

    Holds every trial known so far (:attr:`known`, in the order they run: the selection
    trials, then each config's test trials as its selection is decided, then the equal-time
    trials), the jobs this driver has submitted and not yet seen end (:attr:`inflight`), and
    the records that will not change any more (settled ones: not read again).
    """

    def __init__(self, study: Study, store: Store, launcher: Launcher, options: Options,
                 log: Callable[[str], None]) -> None:
        self.study, self.store, self.launcher = study, store, launcher
        self.options, self.log = options, log
        self.state = StudyState()
        self.chosen_from = selection_trials(study)
        self.known: dict[str, Trial] = {}
        self.inflight: set[str] = set()
        self.final: dict[str, dict[str, Any]] = {}  # settled records (done, or out of retries)
        # the equal wall-clock budgets: those the store's equal-time trials were given, then
        # those computed from the references' times as they become known
        self.recorded = recorded_equal_time(study, store.records())
        self.seconds: dict[tuple[str | None, int], int] = {}
        self.unselected: set[tuple[str, str | None]] = set()  # said to have no selection
        self.positions: dict[str, int] = {}  # trial id -> the order it became known in

    def run(self) -> None:
        """Submit what may run, wait for it (submitting more as jobs end), until all settle."""
        self.add(self.chosen_from, "select")
        while True:
            records = self.step()
            if self.inflight:
                self.launcher.wait(self.ended)
                self.inflight.clear()  # every job submitted, those of ``ended`` too, has ended
                continue
            waiting = [t for t in self.known if not settled(records.get(t), self.options.retries)]
            if not waiting:
                break
            self.log(f"waiting for {len(waiting)} trial(s) run by other workers")
            time.sleep(self.options.poll)
        self.state.selections = dict(sorted(self.state.selections.items(), key=self.order))
        write_selection(self.store, self.state.selections, self.study)
        self.state.trials = sorted(self.known.values(), key=self.trial_order)
        self.state.records = {t.id: r for t in self.state.trials
                              if (r := self.store.read(t.id)) is not None}

    def ended(self, result: JobResult) -> None:
        """A job has ended: say so, then add and submit what may run now."""
        self.inflight.discard(result.trial_id)
        self.state.results.append(result)
        self.log(describe(result, self.store.read(result.trial_id)))
        self.step()

    def step(self) -> dict[str, dict[str, Any]]:
        """Add the trials the records now allow, submit every one that may run; the records."""
        records = self.read()
        while self.advance(records):  # each phase added may allow the next (a restarted
            records = self.read()  # study's test trials, done already, give the equal time)
        todo = [t for tid, t in self.known.items() if tid not in self.inflight
                and runnable(records.get(tid), self.options.retries)
                and self.store.holder(tid) is None]
        if todo:
            todo.sort(key=self.submit_order)  # stable: as known within a phase and budget
            weights = self.study.evaluation.feature_extractor_weights_path
            self.launcher.submit([job(self.store, t, self.options, weights) for t in todo])
            self.inflight.update(t.id for t in todo)
        return records

    def read(self) -> dict[str, dict[str, Any]]:
        """The records of the known trials (settled ones from memory), by id."""
        records = dict(self.final)
        for tid in self.known.keys() - self.final.keys():
            record = self.store.read(tid)
            if record is not None:
                records[tid] = record
                if settled(record, self.options.retries):
                    self.final[tid] = record
        return records

    def add(self, trials: Sequence[Trial], what: str) -> bool:
        """Add trials not known yet to the store (``pending``) and to :attr:`known`."""
        new = [t for t in trials if t.id not in self.known]
        for trial in new:
            self.store.add(trial.to_json())
            self.known[trial.id] = trial
            self.positions[trial.id] = len(self.positions)
        if new:
            self.log(f"{what}: {len(new)} trial(s)")
        return bool(new)

    def advance(self, records: dict[str, dict[str, Any]]) -> bool:
        """Decide what the settled records allow; whether any trial was added.

        The selections whose trials have all settled, their test trials, and the equal-time
        trials once their budget is known.
        """
        study, added = self.study, False
        done = [t.id for t in self.chosen_from if t.id in self.final]
        selections = select(study, self.chosen_from, records, done)
        new = [key for key in selections if key not in self.state.selections]
        for key in new:
            selection = selections[key]
            self.state.selections[key] = selection
            where = f" on {selection.dataset}" if selection.dataset else ""
            if selection.trial is not None:
                self.log(f"selected {selection.method}{where}: {point_label(selection.point)} "
                         f"({variant(selection.recalibrate)}), validation "
                         f"{study.selection_metric} {selection.value:.4g} "
                         f"({selection.done} of {selection.total} grid points scored)")
            added |= self.add(test_trials(study, {key: selection}),
                              f"test {selection.method}{where}")
        if new:
            write_selection(self.store, dict(sorted(self.state.selections.items(),
                                                    key=self.order)), study)
        for key in sorted({(t.method, t.dataset) for t in self.chosen_from}, key=str):
            mine = [t for t in self.chosen_from if (t.method, t.dataset) == key]
            if key not in self.state.selections and key not in self.unselected and all(
                    t.id in self.final for t in mine):
                self.unselected.add(key)
                self.log(f"no selection for {key[0]}{f' on {key[1]}' if key[1] else ''}: none "
                         f"of its selection trials has a finite {study.selection_metric} (see "
                         "their records' errors); its test trials are not run")
        tests = [t for t in self.known.values() if t.phase == "test"
                 and t.budget.max_seconds is None]
        for (dataset, steps), budget in {**equal_time_seconds(study, tests, records),
                                         **self.recorded}.items():
            if (dataset, steps) not in self.seconds:
                self.seconds[dataset, steps] = budget
                where = f" on {dataset}" if dataset else ""
                how = ", as its trials recorded it" if (dataset, steps) in self.recorded else ""
                self.log(f"equal wall-clock budget{where}: {budget:g} s (the references at "
                         f"{steps} steps{how})")
        added |= self.add(time_trials(study, self.state.selections, self.seconds), "equal time")
        return added

    def order(self, item: tuple[tuple[str, str | None], Selection]) -> tuple[int, int]:
        """A selection's place in the study: dataset, then config, as in the file."""
        (method, dataset), _ = item
        datasets = [d.label for d in self.study.datasets]
        methods = [m.label for m in self.study.methods]
        return datasets.index(dataset), methods.index(method)

    @staticmethod
    def submit_order(trial: Trial) -> tuple[int, int]:
        """A trial's place among those submitted together: phase, then the largest steps first.

        The pool then ends on its shortest trials, so its workers finish nearly together (a
        10000-step trial queued last would run alone while the other workers idle).
        """
        phase = phase_rank(trial)
        return phase, -trial.budget.max_steps if phase == 1 else 0

    def trial_order(self, trial: Trial) -> tuple[int, ...]:
        """A trial's place in phase order: selection, test, equal time; then as planned."""
        return (phase_rank(trial), *self.order(((trial.method, trial.dataset), None)),
                self.positions[trial.id])


def phase_rank(trial: Trial) -> int:
    """0 for a selection trial, 1 for a test trial at a step budget, 2 for an equal-time one."""
    return 0 if trial.phase == "select" else 1 if trial.budget.max_seconds is None else 2


def write_selection(store: Store, selections: dict[tuple[str, str | None], Selection],
                    study: Study) -> None:
    """``<root>/selection.json``: the selected setting per config and dataset."""
    write_json(store.root / "selection.json", {
        "metric": study.selection_metric, "mode": study.selection_mode,
        "selected": [{"method": s.method, "dataset": s.dataset, "point": dict(s.point),
                      "recalibrate_batchnorm": s.recalibrate, "trial": s.trial,
                      "value": s.value, "done": s.done, "total": s.total}
                     for s in selections.values()]})


def job(store: Store, trial: Trial, options: Options, weights: str | None = None) -> Job:
    """The job of a trial (the launcher sets its threads).

    ``weights``: the study's Inception weights file (made absolute: a worker may run elsewhere).
    """
    return Job(str(store.root), trial.id, options.retries, options.lease, options.heartbeat,
               data_root=options.data_root,
               feature_extractor_weights_path=None if weights is None else str(
                   Path(weights).resolve()))


def describe(result: JobResult, record: dict[str, Any] | None) -> str:
    """One line about a finished job: its outcome, and the times of a done trial."""
    if result.outcome != "done":
        return f"  {result.outcome:<8} {result.trial_id}: {result.detail}"
    record = record or {}
    timings = record.get("timings") or {}
    parts = [f"{name} {value:.0f} s" for name, value in (
        ("fit", timings.get("fit_seconds")), ("train", record.get("train_seconds")),
        ("start", timings.get("start_seconds")), ("eval", timings.get("eval_seconds")))
        if isinstance(value, int | float)]
    reused = f", reuses {record['reused']}" if record.get("reused") else ""
    return f"  done     {result.trial_id} ({', '.join(parts)}{reused})"
