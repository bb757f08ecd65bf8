"""``genae study status``: where a study stands, read from its store; no driver needed.

A study runs for hours, on this machine or on a cluster; ``status`` reads its folder (the trial
records, the claims and each running trial's ``metrics.csv``) and prints:

- the counts: trials done, running, waiting and failed, of the study's total (the test and
  equal-time trials that depend on a selection are counted before they are recorded);
- each running trial: its step of its budget, how long it has run, and its holder's last
  heartbeat (a claim whose worker is dead, or silent for longer than the lease, is stale: the
  next driver takes the trial over);
- each failed trial: its attempts and its last error;
- the work done: fit and evaluation time of the finished trials, and their median per config;
- the work left: an estimate of the fit and evaluation time of the recorded trials still to
  run, from the finished ones (:func:`time_left`).

It changes nothing and starts nothing, so it is safe beside running drivers.
"""

import argparse
import csv
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genae_lightning.studies.definition import Study
from genae_lightning.studies.plan import trial_counts
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.store import (
    DEFAULT_LEASE,
    DEFAULT_ROOT,
    Store,
    claim_age,
    is_stale,
    read_claim,
)


def last_step(run_dir: Path) -> int | None:
    """The newest training step a run reached; None before it logged or saved one.

    Read from its ``metrics.csv`` rows and its checkpoint files (``...step=<n>.ckpt``).
    """
    steps = [int(m[1]) for p in (run_dir / "checkpoints").glob("*.ckpt")
             if (m := re.search(r"step=(\d+)", p.name))]
    try:
        with (run_dir / "metrics.csv").open(newline="", encoding="utf-8") as file:
            logged = [row.get("step") or "" for row in csv.DictReader(file)]
    except (FileNotFoundError, csv.Error):
        logged = []
    steps += [int(s) + 1 for s in logged if s.isdigit()]  # Lightning logs step i after i + 1
    return max(steps, default=None)


def budget_label(trial: dict[str, Any]) -> str:
    """``ae at 1000 steps``, or ``ae at equal time``: a trial's config and budget."""
    budget = trial.get("budget") or {}
    if budget.get("max_seconds"):
        return f"{trial['method']} at equal time"
    return f"{trial['method']} at {budget.get('max_steps')} steps"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def running_line(store: Store, record: dict[str, Any], now: float) -> str:
    """One running trial: step of budget, time since its claim, and its holder's heartbeat."""
    trial, line = record["trial"], f"  {record['id']}:"
    budget = trial.get("budget") or {}
    step = last_step(store.run_dir(record["id"]))
    if trial.get("reuses"):
        line += f" evaluating the run of {trial['reuses']}"
    elif step is None:
        line += " starting (no step logged yet)"
    elif budget.get("max_seconds"):  # equal time: the clock decides, max_steps is a cap
        line += f" step {step}, training for {budget['max_seconds']:.0f} s (equal time)"
    elif budget.get("max_steps") and step >= budget["max_steps"]:  # (the end of fit logs too)
        line += f" trained ({budget['max_steps']} steps), fitting the priors or evaluating"
    elif budget.get("max_steps"):
        line += f" step {step} of {budget['max_steps']} ({step / budget['max_steps']:.0%})"
    else:
        line += f" step {step}"
    path = store.claim_path(record["id"])
    claim, age = read_claim(path), claim_age(path)
    if not claim or age is None:
        return line + "; no claim: its worker is gone (the next driver runs it again)"
    held = now - claim.get("claimed", now)
    line += (f"; claimed {_minutes(held)} ago by {claim.get('host', '?')} pid "
             f"{claim.get('pid', '?')}, heartbeat {age:.0f} s ago")
    return line + (" (stale: its worker is gone or silent past the lease; the next driver "
                   "takes the trial over)" if is_stale(claim, age, store.lease) else "")


def _choices(trial: dict[str, Any]) -> int:
    """How many evaluations a trial makes (one per BatchNorm choice)."""
    return len((trial.get("evaluation") or {}).get("recalibrate_batchnorm") or [0])


@dataclass
class DoneTimes:
    """The done trials' times, collected in one pass over their records.

    ``fits`` (by config and budget) holds the fit processes' own seconds, which the "done:" line
    reports; ``trains`` holds the checkpoints' ``Timer`` (whole over resumes, where the fit
    processes miss the attempts that were killed), which the estimate of the time left uses, with
    ``per_step`` (by config), ``outside`` (time outside training) and ``evals`` (per evaluation).
    """

    count: int = 0
    busy: float = 0.0
    fits: dict[str, list[float]] = field(default_factory=dict)
    trains: dict[str, list[float]] = field(default_factory=dict)
    per_step: dict[str, list[float]] = field(default_factory=dict)
    outside: list[float] = field(default_factory=list)
    evals: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> "DoneTimes":
        """Collect the times of the done records among ``records``."""
        out = cls()
        for r in records:
            if r["state"] != "done":
                continue
            out.count += 1
            timings, trial = r.get("timings") or {}, r["trial"]
            if timings.get("eval_seconds"):
                out.busy += timings["eval_seconds"]
                out.evals.append(timings["eval_seconds"] / max(1, _choices(trial)))
            if trial.get("reuses"):
                continue
            label = budget_label(trial)
            if timings.get("fit_seconds"):
                out.busy += timings["fit_seconds"]
                out.fits.setdefault(label, []).append(timings["fit_seconds"])
            if not r.get("train_seconds"):
                continue
            out.trains.setdefault(label, []).append(r["train_seconds"])
            if timings.get("overhead_seconds") is not None:
                out.outside.append(timings["overhead_seconds"])
            if not (trial.get("budget") or {}).get("max_seconds") and r.get("steps"):
                out.per_step.setdefault(trial["method"], []).append(
                    r["train_seconds"] / r["steps"])
        return out

    def fit(self, trial: dict[str, Any]) -> float | None:
        """A trial's fit seconds, the time outside training included.

        0 for a trial that evaluates another's run; None when nothing goes by.
        """
        if trial.get("reuses"):
            return 0.0
        budget = trial.get("budget") or {}
        if budget.get("max_seconds"):
            fit = budget["max_seconds"]
        elif budget_label(trial) in self.trains:
            fit = statistics.median(self.trains[budget_label(trial)])
        elif trial["method"] in self.per_step:
            fit = statistics.median(self.per_step[trial["method"]]) * budget["max_steps"]
        else:
            return None
        return fit + (statistics.median(self.outside) if self.outside else 0.0)


def time_left(store: Store, records: list[dict[str, Any]], now: float,
              done: DoneTimes | None = None) -> tuple[float, int, int]:
    """The estimated seconds of fit and evaluation left; trials estimated, trials not.

    Over the recorded trials not done (waiting or running; failed ones are left out), in one
    worker's time, from the done trials (``done``, collected from ``records`` when not given):

    - a fit: the median training time (the checkpoints' ``Timer``, whole over resumes) of the
      same config and budget; else the config's median time per step at any step budget,
      times the trial's steps; for an equal-time trial its seconds. Plus the median time
      outside training (start, data, end-of-fit priors). None for a trial that evaluates
      another's run. A running trial's fit counts from its last step
      (step budgets) or from its claim (equal time);
    - an evaluation: the median seconds per evaluation, times the trial's choices.

    A trial whose fit has nothing to go by is not estimated.
    """
    done = DoneTimes.of(records) if done is None else done
    seconds, estimated, unknown = 0.0, 0, 0
    for r in records:
        if r["state"] not in ("pending", "running"):
            continue
        trial = r["trial"]
        budget = trial.get("budget") or {}
        fit = done.fit(trial)
        if fit is None:
            unknown += 1
            continue
        if r["state"] == "running" and fit:
            if budget.get("max_seconds"):
                held = now - (read_claim(store.claim_path(r["id"])) or {}).get("claimed", now)
                fit = max(0.0, fit - held)
            else:
                step = last_step(store.run_dir(r["id"])) or 0
                fit *= max(0.0, 1 - step / budget["max_steps"])
        seconds += fit + (statistics.median(done.evals) * _choices(trial) if done.evals else 0.0)
        estimated += 1
    return seconds, estimated, unknown


def status_lines(study: Study, root: Path, lease: float = DEFAULT_LEASE,
                 now: float | None = None) -> list[str]:
    """The lines ``genae study status`` prints (see the module's docstring)."""
    now = time.time() if now is None else now
    if not (root / "study.json").is_file():
        return [f"study {study.name}: nothing in {root} yet (start it with `genae study run "
                f"{study.name} --root {root}`)"]
    store = Store(root, lease)
    records = [r for r in store.records().values() if r["trial"].get("study") == study.name]
    by_state: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_state.setdefault(record["state"], []).append(record)
    total = max(trial_counts(study).total, len(records))
    counts = {s: len(by_state.get(s, [])) for s in ("done", "running", "pending", "failed")}
    unrecorded = total - len(records)
    lines = [f"study {study.name} in {root}: {counts['done']} of {total} trial(s) done, "
             f"{counts['running']} running, {counts['pending']} waiting, {counts['failed']} "
             f"failed" + (f", {unrecorded} not recorded yet (they wait for a selection or the "
                          "references' times)" if unrecorded else "")]
    if by_state.get("running"):
        lines.append("running:")
        lines += [running_line(store, r, now) for r in sorted(by_state["running"],
                                                                key=lambda r: r["id"])]
    if by_state.get("failed"):
        lines.append("failed (run again by the next driver while attempts are left):")
        for r in sorted(by_state["failed"], key=lambda r: r["id"]):
            error = (r.get("error") or "").strip().splitlines() or ["(no message)"]
            lines.append(f"  {r['id']}: {r['failures']} failure(s); {error[-1]}")
    done = DoneTimes.of(records)
    if done.count:
        medians = ", ".join(f"{m} {statistics.median(t):.0f} s"
                            for m, t in sorted(done.fits.items()))
        lines.append(f"done: {done.count} trial(s), {_minutes(done.busy)} of fit and evaluation"
                     + (f"; median fit per config and budget: {medians}" if medians else ""))
    seconds, estimated, unknown = time_left(store, records, now, done)
    later = f"; the {unrecorded} not recorded yet are not in it" if unrecorded else ""
    if estimated:
        lines.append(
            f"left: about {_minutes(seconds)} of fit and evaluation for {estimated} recorded "
            "trial(s) to run (one worker's time: divide by the workers; from the done trials' "
            "medians)" + (f"; {unknown} trial(s) with nothing to go by yet" if unknown else "")
            + later)
    elif unknown:
        lines.append(f"left: no estimate yet: none of the {unknown} recorded trial(s) to run "
                     "has a done trial of its config to go by" + later)
    return lines


def status_command(argv: list[str]) -> list[str]:
    """``genae study status``: where a study stands (done, running, failed), from its folder."""
    parser = argparse.ArgumentParser(prog="genae study status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="a bundled study's name (`genae study list`) or a file")
    parser.add_argument("--root", default=None,
                        help=f"the study's folder (default: {DEFAULT_ROOT}/<study name>)")
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE,
                        help="seconds without a heartbeat after which a claim is stale (as "
                             "genae study run's --lease)")
    args = parser.parse_args(argv)
    study = load_study(args.study, check_classes=False)  # read only: nothing runs
    lines = status_lines(study, Path(args.root or Path(DEFAULT_ROOT) / study.name), args.lease)
    print("\n".join(lines))
    return lines
