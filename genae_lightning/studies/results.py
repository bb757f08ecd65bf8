"""A study's results as ``genae study report`` and ``genae study dashboard`` read them.

Two sources give the same :class:`Results`:

- :func:`from_store`: a study's store (``<root>/trials/*.json``, ``<root>/selection.json``).
  Only the trials of the study file as it is now count (a changed setting gives new trials; the
  old records stay in the store, unused): the selection trials, the test trials of the
  selection in ``selection.json`` and the equal wall-clock trials, expanded by
  :mod:`~genae_lightning.studies.plan` as the driver does.
- :func:`from_table1_jsonl`: the committed results of ``bench/table1.py``
  (``bench/results/table1/<dataset>/results.jsonl``), read with the ``table1_*`` study that
  took over its protocol, so its numbers stay readable next to the studies'.
"""

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genae_lightning.commands.report import FID_COLUMNS, OTHER_COLUMNS, _fid_title
from genae_lightning.metrics.fid import split_fid_key
from genae_lightning.studies.definition import Study
from genae_lightning.studies.plan import (
    Selection,
    Trial,
    equal_time_seconds,
    point_label,
    result_metrics,
    select,
    selection_trials,
    test_trials,
    time_trials,
    variant,
)
from genae_lightning.studies.store import Store, read_json

Column = tuple[str, int]  # ("steps", max_steps) or ("time", the references' steps)


@dataclass(frozen=True)
class Result:
    """One finished test trial: its seed's test metrics at one budget.

    Attributes:
        method: The config's label.
        dataset: The dataset's label (None when the study names none).
        column: ``("steps", max_steps)``, or ``("time", steps)`` for a run given the references'
            training time at ``steps``.
        seed: Its seed.
        metrics: Test metric -> value.
        steps: Steps it trained (None when not recorded).
        train_seconds: Its training time (None when not recorded).
        seconds: The wall-clock budget of an equal-time run, else None.
        wandb_id: Its W&B run's id (None without one).
    """

    method: str
    dataset: str | None
    column: Column
    seed: int
    metrics: Mapping[str, float]
    steps: int | None = None
    train_seconds: float | None = None
    seconds: int | None = None
    wandb_id: str | None = None

    @property
    def budget(self) -> str:
        """``steps=<n>`` or ``time=<s>s`` (:func:`budget_name`), as the trial's budget names it."""
        return budget_name(self.column, self.seconds)

    def value(self, metric: str) -> float | None:
        """A metric's value; None when it is missing or not finite (a diverged run)."""
        value = self.metrics.get(metric)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None


@dataclass(frozen=True)
class GridPoint:
    """One selection run's validation score (per evaluation choice).

    Attributes:
        method: The config's label.
        dataset: The dataset's label.
        setting: The grid point (:func:`~genae_lightning.studies.plan.point_label`).
        choice: The evaluation choice (``recalibrate_batchnorm=<n>``).
        value: The validation metric; None when the run failed, NaN when it diverged.
        selected: Whether the selection chose this point and choice.
    """

    method: str
    dataset: str | None
    setting: str
    choice: str
    value: float | None
    selected: bool = False


@dataclass(frozen=True)
class Chosen:
    """The selected setting of one config on one dataset.

    Attributes:
        setting: The grid point's label (``default`` without a grid).
        choice: The evaluation choice (``recalibrate_batchnorm=<n>``).
        value: Its validation metric (None for a config without a choice).
        scored: ``<grid points scored>/<grid points>`` (empty without a choice).
    """

    setting: str
    choice: str
    value: float | None = None
    scored: str = ""


@dataclass
class Results:
    """What a study has produced so far.

    Attributes:
        study: The study.
        source: Where the results were read (a store's root, or a results file).
        tests: The finished test trials (every seed, budget, dataset).
        chosen: The selected setting per (config label, dataset label).
        grid: The selection runs' validation scores, in the study's order.
        counts: Test trials by state (``done``, ``failed``, ``pending``, ``running``).
        notes: Lines about what was read (shown under the table).
    """

    study: Study
    source: str
    tests: list[Result] = field(default_factory=list)
    chosen: dict[tuple[str, str | None], Chosen] = field(default_factory=dict)
    grid: list[GridPoint] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def columns(self, dataset: str | None) -> list[Column]:
        """The budget columns of one dataset: the step budgets, then the equal-time ones."""
        steps = [("steps", s) for s in self.study.max_steps]
        equal = self.study.equal_time
        times = [("time", s) for s in (equal.steps if equal else ())
                 if any(r.column == ("time", s) and r.dataset == dataset for r in self.tests)]
        return steps + times

    def of(self, method: str, dataset: str | None, column: Column) -> list[Result]:
        """The results of one config, dataset and budget column, by seed."""
        return sorted((r for r in self.tests
                       if (r.method, r.dataset, r.column) == (method, dataset, column)),
                      key=lambda r: r.seed)

    def check(self) -> "Results":
        """Self, if any test trial is done; else an error naming the source and the fix."""
        if not self.tests:
            states = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items())) or "none yet"
            raise ValueError(
                f"study {self.study.name}: no finished test trial in {self.source} (test trials: "
                f"{states}); expected at least one done: run `genae study run "
                f"{self.study.source}` (it continues where it stopped), or pass the --root it "
                "ran in")
        return self


def budget_name(column: Column, seconds: int | None) -> str:
    """A budget column's name: ``steps=<n>``, or ``time=<s>s`` for equal wall-clock time."""
    return f"steps={column[1]}" if column[0] == "steps" else f"time={seconds}s"


def choice_label(study: Study, recalibrate: int) -> str:
    """The evaluation choice as the report shows it: empty when the study has only one."""
    return variant(recalibrate) if len(study.evaluation.recalibrate_batchnorm) > 1 else ""


# ---------------------------------------------------------------------------------------------
# a study's store


def from_store(study: Study, root: str | Path) -> Results:
    """The results of ``study`` in its store at ``root`` (see the module's docstring).

    Raises:
        FileNotFoundError: ``root`` holds no store.
        ValueError: ``root`` holds another study's store.
    """
    root = Path(root)
    if not (root / "trials").is_dir():
        raise FileNotFoundError(
            f"no study store at {root} (expected {root / 'trials'}/ with one record per trial): "
            f"run `genae study run {study.source}` first, or pass --root with the folder it "
            "ran in")
    saved = read_json(root / "study.json") or {}
    if saved.get("name", study.name) != study.name:
        raise ValueError(f"{root} holds the study {saved['name']!r}, not {study.name!r}: pass "
                         f"`genae study report {saved['name']}`, or the --root of {study.name}")
    records = Store(root).records()
    grid = selection_trials(study)
    selections = read_selections(study, root / "selection.json")
    out = Results(study, str(root))
    if selections is None:
        settled = [t.id for t in grid if (records.get(t.id) or {}).get("state") in (
            "done", "failed")]
        selections = select(study, grid, records, settled)
        out.notes.append("selection.json is not written yet: the selection shown is that of "
                         "the selection trials finished so far")
    tests = test_trials(study, selections)
    seconds = equal_time_seconds(study, tests, records)
    tests += time_trials(study, selections, seconds)
    for trial in tests:
        record = records.get(trial.id) or {}
        out.counts[record.get("state", "pending")] += 1
        metrics = result_metrics(record) if record else None
        if metrics is not None:
            out.tests.append(store_result(study, trial, record, metrics))
    note = environment_note([records.get(t.id) or {} for t in [*grid, *tests]])
    if note:
        out.notes.append(note)
    out.chosen = {key: Chosen(point_label(s.point), choice_label(study, s.recalibrate), s.value,
                              f"{s.done}/{s.total}" if s.trial else "")
                  for key, s in selections.items()}
    out.grid = [GridPoint(t.method, t.dataset, t.point_label, choice_label(study, choice),
                          grid_value(records.get(t.id), choice, study.selection_metric),
                          selected_here(selections.get((t.method, t.dataset)), t, choice))
                for t in grid for choice in t.evaluation.recalibrate_batchnorm]
    return out


def read_selections(study: Study, path: Path) -> dict[tuple[str, str | None], Selection] | None:
    """The driver's ``selection.json`` as :class:`Selection` s (None when it is not written).

    Entries of configs or grid points the study file no longer has are left out.
    """
    data = read_json(path)
    if data is None:
        return None
    out = {}
    labels = {m.label for m in study.methods}
    for entry in data.get("selected", []):
        if entry["method"] not in labels:
            continue
        method = study.method(entry["method"])
        point = next((p for p in method.grid if dict(p) == entry["point"]), None)
        if point is not None:
            out[method.label, entry["dataset"]] = Selection(
                method.label, entry["dataset"], point, entry["recalibrate_batchnorm"],
                entry.get("trial"), entry.get("value"), entry.get("done", 0),
                entry.get("total", 0))
    return out


ENVIRONMENT_KEYS = (("git", "code (git commit)"), ("torch", "torch"), ("threads", "threads"))


def environment_note(records: list[Mapping[str, Any]]) -> str | None:
    """A line when the trials ran with different code, torch or threads; else None.

    Read from each record's ``environments`` (one per attempt; records written before genae
    recorded them have none and are not counted). The same settings give the same numbers only
    with the same code, torch and threads.
    """
    seen: dict[str, dict[Any, set[str]]] = {key: {} for key, _ in ENVIRONMENT_KEYS}
    for record in records:
        for env in record.get("environments") or []:
            for key, _ in ENVIRONMENT_KEYS:
                seen[key].setdefault(env.get(key), set()).add(record["id"])
    parts = []
    for key, title in ENVIRONMENT_KEYS:
        if len(seen[key]) > 1:
            counts = ", ".join(f"{str(v)[:10] if key == 'git' else v}: {len(ids)}"
                               for v, ids in sorted(seen[key].items(), key=lambda i: str(i[0])))
            parts.append(f"{title} ({counts} trials)")
    if not parts:
        return None
    return ("the trials ran with different " + "; ".join(parts) + ": the same settings give "
            "the same numbers only with the same code, torch and threads (each record's "
            "`environments`)")


def store_result(study: Study, trial: Trial, record: Mapping[str, Any],
                 metrics: Mapping[str, float]) -> Result:
    """A done test trial's :class:`Result`."""
    budget = trial.budget
    if budget.max_seconds is None:
        column: Column = ("steps", budget.max_steps)
    else:
        factor = study.equal_time.max_steps_factor if study.equal_time else 1
        column = ("time", budget.max_steps // factor)
    return Result(trial.method, trial.dataset, column, trial.seed, metrics, record.get("steps"),
                  record.get("train_seconds"), budget.max_seconds, record.get("wandb_id"))


def grid_value(record: Mapping[str, Any] | None, choice: int, metric: str) -> float | None:
    """A selection trial's validation metric for one choice; None until it is done."""
    if not record or record.get("state") != "done":
        return None
    value = (record.get("metrics") or {}).get(variant(choice), {}).get(metric)
    return float(value) if isinstance(value, int | float) else math.nan


def selected_here(selection: Selection | None, trial: Trial, choice: int) -> bool:
    """Whether ``selection`` chose this selection trial and choice."""
    return selection is not None and selection.trial == trial.id and selection.recalibrate == choice


# ---------------------------------------------------------------------------------------------
# bench/table1.py's results file

BENCH_CHOICES = {"ema": 0}  # bench/table1.py's BatchNorm statistics; "recal": its budget's count


def from_table1_jsonl(study: Study, path: str | Path, config: str | None = None) -> Results:
    """The results of ``bench/table1.py`` in its ``results.jsonl``, read as ``study``'s.

    The file holds one line per finished run of several budgets (``config``: a hash of the
    budget: steps, batch, width, the InjFlow estimator, ...); one budget is read: ``config``, or
    the one with the most test runs. Its ``train`` runs of the selection seed are the selection
    grid, its ``test`` runs the test trials (``phase``: ``steps`` or ``time``, equal wall clock).
    Method labels are ``bench/table1.py``'s, which the ``table1_*`` studies keep.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: A line is not JSON, or ``config`` is not in the file.
    """
    path = Path(path)
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            if text.strip():
                lines.append(json.loads(text))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err}); expected the lines "
                             "bench/table1.py appends: fix or remove that line") from None
    budgets = {r.get("config"): r.get("budget", {}) for r in lines}
    tested = Counter(r.get("config") for r in lines if r.get("kind") == "test")
    config = config or (tested.most_common(1)[0][0] if tested else None)
    if config not in budgets:
        raise ValueError(f"{path}: no runs of the budget {config!r}; expected one of "
                         f"{', '.join(map(str, budgets)) or '(none: the file is empty)'}")
    mine = [r for r in lines if r.get("config") == config]
    budget = budgets[config]
    out = Results(study, f"{path} (budget {config})")
    others = [f"{c} ({describe_budget(b, budget)})" for c, b in budgets.items() if c != config]
    if others:
        out.notes.append(f"{path} also holds the budgets {'; '.join(others)}: pass --variant")
    dataset = study.datasets[0].label
    recal = int(budget.get("recalibrate", 0))

    def choice(bn: str) -> str:
        return choice_label(study, BENCH_CHOICES.get(bn, recal))

    for r in (r for r in mine if r.get("kind") == "test"):
        out.counts["done" if r.get("test") else "failed"] += 1
        if r.get("test"):
            column: Column = ("time" if r["phase"] == "time" else "steps", int(budget["steps"]))
            seconds = round(r["time_budget"]) if "time_budget" in r else None
            out.tests.append(Result(r["method"], dataset, column, int(r["seed"]), r["test"],
                                    r.get("steps_done", budget["steps"]), r.get("train_seconds"),
                                    seconds))
    selected = {r["method"]: (r["point"], r["bn"]) for r in mine
                if r.get("kind") == "test" and r.get("phase") == "steps"}
    grid = [r for r in mine if r.get("kind") == "train" and r.get("seed") == study.selection_seed]
    for r in grid:
        setting = r["point"].partition("/")[2] or "default"
        for bn, values in (r.get("val") or {}).items():
            out.grid.append(GridPoint(r["method"], dataset, setting, choice(bn),
                                      float(values.get(study.selection_metric, math.nan)),
                                      selected.get(r["method"]) == (r["point"], bn)))
    order = [m.label for m in study.methods]
    out.grid.sort(key=lambda g: order.index(g.method) if g.method in order else len(order))
    for method, (point, bn) in selected.items():
        runs = [g for g in out.grid if g.method == method]
        value = next((g.value for g in runs if g.selected), None)
        finite = {g.setting for g in runs if g.value is not None and math.isfinite(g.value)}
        scored = f"{len(finite)}/{len({g.setting for g in runs})}"
        out.chosen[method, dataset] = Chosen(point.partition("/")[2] or "default", choice(bn),
                                             value, scored)
    return out


def describe_budget(budget: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """How a ``bench/table1.py`` budget differs from another: ``jac_fraction=0.5, ...``."""
    return ", ".join(f"{k}={v}" for k, v in budget.items() if reference.get(k) != v) or "same"


def metric_title(key: str) -> str:
    """A metric's column title, as ``genae report`` writes it (``GMM cFID``, ``5-NN acc.``)."""
    fid = split_fid_key(key)
    kinds = dict((kind, title) for title, kind in FID_COLUMNS)
    if fid is not None and fid[1] in kinds:
        return f"{kinds[fid[1]]} {_fid_title(fid[0])}"
    return next((title for title, k, _ in OTHER_COLUMNS if k == key), key)


def metric_format(key: str) -> str:
    """A metric's number format: ``.2f`` for FIDs, ``genae report``'s for the others."""
    if split_fid_key(key) is not None:
        return ".2f"
    return next((fmt for _, k, fmt in OTHER_COLUMNS if k == key), ".4g")
