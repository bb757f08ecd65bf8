"""The study driver: expand the study, run each phase through a launcher, select, test.

:func:`run_study` runs the phases of :mod:`~genae_lightning.studies.plan` in order: the
selection trials, then (once they are settled) the test trials of the selected settings, then
the equal wall-clock trials. Each phase adds its trials to the store as ``pending`` (never
overwriting a record), then submits every trial that may run (not done, not out of retries,
not held by a live claim) and waits; trials held by another driver's workers are waited for by
polling the store. So:

- running a study again continues where it stopped (done trials are skipped, stopped ones
  resume from their checkpoints, failed ones are retried while retries are left);
- two drivers on one study (on one machine or many, sharing the root) split the trials between
  them and never train one twice: the store's claims decide who runs each.

The selection is written to ``<root>/selection.json`` (config/dataset -> grid point, choice,
selection trial, validation value), for ``genae study report``.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genae_lightning.studies.definition import Study
from genae_lightning.studies.launchers import Launcher
from genae_lightning.studies.plan import (
    Selection,
    Trial,
    equal_time_seconds,
    point_label,
    select,
    selection_trials,
    test_trials,
    time_trials,
    variant,
)
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


def run_study(study: Study, root: str | Path, launcher: Launcher, options: Options | None = None,
              log: Callable[[str], None] = print) -> StudyState:
    """Run (or continue) a study in ``root`` with ``launcher``; returns where it stands."""
    options = options or Options()
    store = Store(root, options.lease)
    store.init(study_record(study))
    state = StudyState()
    chosen_from = selection_trials(study)
    run_phase(store, chosen_from, launcher, options, state, log, "select")
    records = store.records()
    done = [t.id for t in chosen_from if settled(records.get(t.id), options.retries)]
    state.selections = select(study, chosen_from, records, done)
    write_selection(store, state.selections, study)
    for key in sorted({(t.method, t.dataset) for t in chosen_from} - set(state.selections),
                      key=str):
        log(f"no selection for {key[0]}{f' on {key[1]}' if key[1] else ''}: none of its "
            f"selection trials has a finite {study.selection_metric} (see their records' "
            "errors); its test trials are not run")
    for selection in state.selections.values():
        if selection.trial is not None:
            where = f" on {selection.dataset}" if selection.dataset else ""
            log(f"selected {selection.method}{where}: {point_label(selection.point)} "
                f"({variant(selection.recalibrate)}), validation "
                f"{study.selection_metric} {selection.value:.4g} "
                f"({selection.done} of {selection.total} grid points scored)")
    tests = test_trials(study, state.selections)
    run_phase(store, tests, launcher, options, state, log, "test")
    seconds = equal_time_seconds(study, tests, store.records())
    for (dataset, steps), budget in seconds.items():
        where = f" on {dataset}" if dataset else ""
        log(f"equal wall-clock budget{where}: {budget:g} s (the references at {steps} steps)")
    run_phase(store, time_trials(study, state.selections, seconds), launcher, options, state,
              log, "equal time")
    state.records = {t.id: r for t in state.trials if (r := store.read(t.id)) is not None}
    return state


def write_selection(store: Store, selections: dict[tuple[str, str | None], Selection],
                    study: Study) -> None:
    """``<root>/selection.json``: the selected setting per config and dataset."""
    write_json(store.root / "selection.json", {
        "metric": study.selection_metric, "mode": study.selection_mode,
        "selected": [{"method": s.method, "dataset": s.dataset, "point": dict(s.point),
                      "recalibrate_batchnorm": s.recalibrate, "trial": s.trial,
                      "value": s.value, "done": s.done, "total": s.total}
                     for s in selections.values()]})


def run_phase(store: Store, trials: Sequence[Trial], launcher: Launcher, options: Options,
              state: StudyState, log: Callable[[str], None], phase: str) -> None:
    """Run ``trials`` until every one is settled (done, or out of retries)."""
    state.trials += trials
    for trial in trials:
        store.add(trial.to_json())
    if trials:
        log(f"{phase}: {len(trials)} trial(s)")
    while True:
        records = {t.id: store.read(t.id) for t in trials}
        todo = [t for t in trials if runnable(records[t.id], options.retries)
                and store.holder(t.id) is None]
        if todo:
            launcher.submit([job(store, t, options) for t in todo])
            state.results += launcher.wait(
                lambda result: log(describe(result, store.read(result.trial_id))))
            continue
        waiting = [t for t in trials if not settled(records[t.id], options.retries)]
        if not waiting:
            return
        log(f"{phase}: waiting for {len(waiting)} trial(s) run by other workers")
        time.sleep(options.poll)


def job(store: Store, trial: Trial, options: Options) -> Job:
    """The job of a trial (the launcher sets its threads)."""
    return Job(str(store.root), trial.id, options.retries, options.lease, options.heartbeat,
               data_root=options.data_root)


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
