"""A :class:`~genae_lightning.studies.definition.Study` expanded into trials; the selection.

Phases, in order (:mod:`~genae_lightning.studies.run` drives them):

1. ``select``: every grid point of every config that has a choice (several grid points, or
   several ``evaluation.recalibrate_batchnorm`` values), trained once with the selection seed
   at ``budgets.selection_steps`` and scored on the **validation** split, once per
   ``recalibrate_batchnorm`` choice (:func:`selection_trials`).
2. :func:`select`: per config and dataset, the (grid point, choice) of the lowest (``mode:
   max``: highest) validation metric. The test split is not looked at before.
3. ``test``: the selected setting with every seed and every ``budgets.max_steps``, scored on the
   **test** split; the selection run is reused for the selection seed at the selection budget
   (the trial evaluates its checkpoint instead of training) (:func:`test_trials`).
4. ``test`` at equal wall-clock time: every config but the references trained for the
   references' median training time (:func:`equal_time_seconds`, :func:`time_trials`).

A trial's :attr:`Trial.id` is a hash of everything that decides its numbers (config, overrides,
grid point, seed, budget, split, evaluation settings), so expanding the same study again gives
the same ids, and a changed setting gives new ones (the old records stay, unused).
"""

import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genae_lightning.studies.definition import Evaluation, Method, Settings, Study

PHASES = ("select", "test")
NO_TIME_LIMIT = "365:00:00:00"  # max_time of step budgets (DD:HH:MM:SS): the Timer measures
# appended to every trial's callbacks: its last.ckpt holds the final weights (final_checkpoint.py)
FINAL_CHECKPOINT = "genae_lightning.studies.final_checkpoint.FinalCheckpoint"


@dataclass(frozen=True)
class Budget:
    """A trial's training budget: steps, and for equal-time trials a time limit too.

    Attributes:
        max_steps: ``trainer.max_steps``.
        max_seconds: ``trainer.max_time`` in whole seconds (equal wall-clock trials), else None.
    """

    max_steps: int
    max_seconds: int | None = None

    @property
    def name(self) -> str:
        """``steps=2000`` or ``time=837s``: the report's column."""
        if self.max_seconds is None:
            return f"steps={self.max_steps}"
        return f"time={self.max_seconds}s"


@dataclass(frozen=True)
class Trial:
    """One run of a study: ``genae fit`` (unless it reuses another trial's run) plus evaluation.

    Attributes:
        id: Stable id: ``<phase>-<config>[-<dataset>]-s<seed>-<hash>``, the hash over every
            setting that decides the trial's numbers.
        study: The study's name.
        phase: ``select`` (scored on validation) or ``test`` (scored on test).
        method: The config's label in the study.
        config: The bundled config's name (or path) it trains.
        dataset: The dataset's label (None when the study names no datasets).
        seed: ``seed_everything`` of the run.
        point: The grid point (dotted key -> value); empty without a grid.
        budget: Steps (and time) of the run.
        split: The evaluation split: ``val`` or ``test``.
        evaluation: ``genae evaluate``'s settings; one evaluation per
            ``recalibrate_batchnorm`` choice (all of them for a selection trial, the selected
            one for a test trial).
        overrides: Every ``genae fit`` override, in order: dataset, study, config, grid point.
        reuses: The trial whose run this one evaluates instead of training (the selection run,
            for the selection seed), or None.
        wandb: W&B logger settings (``project``, ``entity``), or None for no W&B run.
    """

    id: str
    study: str
    phase: str
    method: str
    config: str
    dataset: str | None
    seed: int
    point: Settings
    budget: Budget
    split: str
    evaluation: Evaluation
    overrides: Settings
    reuses: str | None = None
    wandb: Mapping[str, str] | None = field(default=None, compare=False)

    @property
    def point_label(self) -> str:
        """The grid point as ``l2_weight=0.01/...`` (:func:`point_label`)."""
        return point_label(self.point)

    def to_json(self) -> dict[str, Any]:
        """The trial as plain JSON data (the ``trial`` entry of its record)."""
        data = asdict(self)
        data["point"] = [list(p) for p in self.point]
        data["overrides"] = [list(p) for p in self.overrides]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Trial":
        """The trial of :meth:`to_json`'s data."""
        evaluation = dict(data["evaluation"])
        evaluation["samplers"] = tuple(evaluation["samplers"])
        evaluation["recalibrate_batchnorm"] = tuple(evaluation["recalibrate_batchnorm"])
        return cls(**{**data, "point": tuple(tuple(p) for p in data["point"]),
                      "overrides": tuple(tuple(p) for p in data["overrides"]),
                      "budget": Budget(**data["budget"]),
                      "evaluation": Evaluation(**evaluation)})

    def fit_args(self, run_dir: Path, wandb_id: str | None = None) -> list[str]:
        """The exact ``genae fit`` arguments of this trial, writing into ``run_dir``.

        The run's CSV logger writes ``run_dir`` itself (``config.yaml``, ``metrics.csv``,
        ``checkpoints/``); a W&B run (group: the study, job type: the phase, config: ``study``
        with the trial's settings) writes under ``run_dir/wandb``. ``trainer.max_time`` is always
        set, so that Lightning's ``Timer`` measures the training time into the checkpoints.
        :class:`~genae_lightning.studies.final_checkpoint.FinalCheckpoint` is appended to the
        callbacks (the config's or the study's), so ``checkpoints/last.ckpt``, which the trial
        evaluates, holds the final weights whatever the checkpoint interval and however the fit
        stopped (``max_steps`` or ``max_time``).
        """
        budget = self.budget
        max_time = NO_TIME_LIMIT if budget.max_seconds is None else duration(budget.max_seconds)
        loggers: list[dict[str, Any]] = [{
            "class_path": "genae_lightning.loggers.GenaeCSVLogger",
            "init_args": {"save_dir": str(run_dir.parent), "name": None, "version": run_dir.name}}]
        if self.wandb is not None:
            loggers.append({"class_path": "genae_lightning.loggers.GenaeWandbLogger",
                            "init_args": {**self.wandb, **self.wandb_args(run_dir, wandb_id)}})
        final = {"class_path": FINAL_CHECKPOINT,
                 "init_args": {"path": str(run_dir / "checkpoints" / "last.ckpt")}}
        return ["fit", "--config", self.config,
                *(f"--{key}={cli_value(value)}" for key, value in self.overrides),
                f"--seed_everything={self.seed}", f"--trainer.max_steps={budget.max_steps}",
                f"--trainer.max_time={max_time}",
                f"--trainer.default_root_dir={run_dir}",
                f"--trainer.logger={json.dumps(loggers)}", "--trainer.enable_progress_bar=false",
                f"--trainer.callbacks+={json.dumps(final)}"]

    def wandb_args(self, run_dir: Path, wandb_id: str | None) -> dict[str, Any]:
        """The W&B logger's settings: the study as group, the phase as job type, its config."""
        args: dict[str, Any] = {
            "save_dir": str(run_dir), "name": self.id, "group": self.study,
            "job_type": self.phase, "tags": [self.study, self.phase, self.method],
            "config": {"study": {
                "name": self.study, "trial": self.id, "phase": self.phase,
                "method": self.method, "config": self.config, "dataset": self.dataset,
                "seed": self.seed, "point": dict(self.point), "point_label": self.point_label,
                "budget": self.budget.name},
                # flat too, so the project's runs table groups by the study's labels at once
                "method": self.method, "trial": self.id, "point": self.point_label}}
        if wandb_id is not None:
            args.update(id=wandb_id, resume="allow")  # a resumed trial continues its W&B run
        return args

    def evaluate_args(self, checkpoint: Path, recalibrate: int, out: Path) -> list[str]:
        """``genae evaluate``'s arguments for one evaluation of this trial's checkpoint."""
        ev = self.evaluation
        fid = ["--no_fid=true"] if ev.feature is None else [f"--fid_feature={ev.feature}"]
        return [f"--ckpt_path={checkpoint}", f"--split={self.split}",
                f"--num_samples={ev.num_samples}",
                f"--knn_train_samples={cli_value(ev.knn_train_samples)}",
                f"--samplers={json.dumps(list(ev.samplers))}", f"--batch_size={ev.batch_size}",
                f"--seed={self.seed}", f"--recalibrate_batchnorm={recalibrate}",
                f"--name={self.method}", f"--out={out}", "--progress=false", *fid]


def duration(seconds: int) -> str:
    """Whole seconds as ``trainer.max_time`` takes them: ``DD:HH:MM:SS``, two digits each.

    Lightning's ``Timer`` refuses anything else (``00:00:00:837`` is not a duration).

    >>> duration(837), duration(3), duration(90061)
    ('00:00:13:57', '00:00:00:03', '01:01:01:01')
    """
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def variant(recalibrate: int) -> str:
    """The name of an evaluation choice in trial records: ``recalibrate_batchnorm=<n>``."""
    return f"recalibrate_batchnorm={recalibrate}"


def result_metrics(record: Mapping[str, Any]) -> dict[str, float] | None:
    """A done test trial's metrics (its one evaluation choice); None until it is done.

    What ``genae study report`` tabulates: mean and spread over the seeds of the test trials
    that share a config, dataset and budget (:attr:`Budget.name`).
    """
    if record.get("state") != "done":
        return None
    trial = record["trial"]
    choices = trial["evaluation"]["recalibrate_batchnorm"]
    return dict(record["metrics"][variant(choices[0])]) if len(choices) == 1 else None


def point_label(point: Settings) -> str:
    """A grid point as ``l2_weight=0.01/...`` (last key parts), ``default`` without one.

    >>> point_label((("model.init_args.l2_weight", 0.01),))
    'l2_weight=0.01'
    """
    return "/".join(f"{k.rsplit('.', 1)[-1]}={short(v)}" for k, v in point) or "default"


def short(value: Any) -> str:
    """A setting's value in a label: numbers with ``%g``, class configs by their class name."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict) and "class_path" in value:
        args = value.get("init_args") or {}
        inner = ",".join(f"{k}={short(v)}" for k, v in args.items())
        return str(value["class_path"]).rsplit(".", 1)[-1] + (f"({inner})" if inner else "")
    return json.dumps(value) if not isinstance(value, str) else value


def cli_value(value: Any) -> str:
    """A setting's value as ``genae fit --key=<value>`` takes it (JSON but for plain strings)."""
    return value if isinstance(value, str) else json.dumps(value)


def settings_hash(data: Any) -> str:
    """A short stable hash of JSON data (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# expansion


def has_choice(study: Study, method: Method) -> bool:
    """Whether a config has something to select (a grid, or several evaluation choices)."""
    return len(method.grid) > 1 or len(study.evaluation.recalibrate_batchnorm) > 1


def make_trial(study: Study, method: Method, dataset_label: str | None, dataset: Settings,
               phase: str, seed: int, point: Settings, budget: Budget,
               recalibrate: tuple[int, ...], reuses: str | None = None) -> Trial:
    """A trial with its stable id."""
    split = "val" if phase == "select" else "test"
    overrides = (*dataset, *study.overrides, *method.overrides, *point)
    # the Inception weights file's place is this machine's, not the trial's (the driver passes
    # it to the evaluations, as the data root): neither in the trial nor in its id
    evaluation = replace(study.evaluation, recalibrate_batchnorm=recalibrate,
                         feature_extractor_weights_path=None)
    settings = {k: v for k, v in asdict(evaluation).items()
                if k != "feature_extractor_weights_path"}
    digest = settings_hash({
        "phase": phase, "method": method.label, "config": method.config,
        "dataset": dataset_label, "seed": seed, "point": point, "budget": asdict(budget),
        "split": split, "overrides": overrides, "evaluation": settings,
        "reuses": reuses})
    parts = [phase, method.label, *([dataset_label] if dataset_label else []), f"s{seed}", digest]
    return Trial(id="-".join(parts), study=study.name, phase=phase, method=method.label,
                 config=method.config, dataset=dataset_label, seed=seed, point=point,
                 budget=budget, split=split, evaluation=evaluation, overrides=overrides,
                 reuses=reuses,
                 wandb=study.wandb)


def selection_trials(study: Study) -> list[Trial]:
    """The ``select`` trials: every grid point of every config with a choice, one seed."""
    budget = Budget(study.selection_steps)
    return [make_trial(study, method, d.label, d.overrides, "select", study.selection_seed,
                       point, budget, study.evaluation.recalibrate_batchnorm)
            for d in study.datasets for method in study.methods if has_choice(study, method)
            for point in method.grid]


@dataclass(frozen=True)
class Selection:
    """The selected setting of one config on one dataset.

    Attributes:
        method: The config's label.
        dataset: The dataset's label.
        point: The selected grid point.
        recalibrate: The selected ``recalibrate_batchnorm`` choice.
        trial: The selection trial of that point (None for a config without a choice).
        value: Its validation metric (None for a config without a choice).
        done: Selection trials with a finite metric.
        total: Selection trials of this config and dataset.
    """

    method: str
    dataset: str | None
    point: Settings
    recalibrate: int
    trial: str | None = None
    value: float | None = None
    done: int = 0
    total: int = 0


def select(study: Study, trials: Iterable[Trial], records: Mapping[str, Mapping[str, Any]],
           settled: Iterable[str]) -> dict[tuple[str, str | None], Selection]:
    """Per config and dataset, the (grid point, choice) of the best validation metric.

    Configs without a choice are "selected" at once. A config with a choice is selected once
    every one of its selection trials is settled (done, or failed for good) and at least one
    has a finite metric; a tie goes to the first in the study's order.

    Args:
        study: The study.
        trials: Its selection trials.
        records: Trial records by id (the store's).
        settled: Ids of the trials that will not run again.
    """
    settled = set(settled)
    trials = list(trials)
    chosen: dict[tuple[str, str | None], Selection] = {}
    sign = 1.0 if study.selection_mode == "min" else -1.0
    for d in study.datasets:
        for method in study.methods:
            if not has_choice(study, method):
                chosen[method.label, d.label] = Selection(
                    method.label, d.label, method.grid[0],
                    study.evaluation.recalibrate_batchnorm[0])
                continue
            mine = [t for t in trials if (t.method, t.dataset) == (method.label, d.label)]
            if not mine or any(t.id not in settled for t in mine):
                continue
            candidates = []
            for order, t in enumerate(mine):
                record = records.get(t.id) or {}
                for choice in t.evaluation.recalibrate_batchnorm:
                    value = (record.get("metrics") or {}).get(variant(choice), {}).get(
                        study.selection_metric)
                    if isinstance(value, int | float) and math.isfinite(value):
                        candidates.append((sign * value, order, choice, t))
            if candidates:
                _, _, choice, best = min(candidates, key=lambda c: c[:2])
                chosen[method.label, d.label] = Selection(
                    method.label, d.label, best.point, choice, best.id,
                    (records[best.id]["metrics"][variant(choice)][study.selection_metric]),
                    len({c[3].id for c in candidates}), len(mine))
    return chosen


def test_trials(study: Study, selections: Mapping[tuple[str, str | None], Selection]
                ) -> list[Trial]:
    """The ``test`` trials at every step budget of the selected settings, every seed."""
    out = []
    for d in study.datasets:
        for method in study.methods:
            chosen = selections.get((method.label, d.label))
            if chosen is None:
                continue
            for steps in study.max_steps:
                for seed in study.seeds:
                    reuses = (chosen.trial if chosen.trial is not None
                              and seed == study.selection_seed
                              and steps == study.selection_steps else None)
                    out.append(make_trial(study, method, d.label, d.overrides, "test", seed,
                                          chosen.point, Budget(steps), (chosen.recalibrate,),
                                          reuses))
    return out


test_trials.__test__ = False  # a phase, not a pytest test, when a test module imports it


def equal_time_seconds(study: Study, tests: Iterable[Trial],
                       records: Mapping[str, Mapping[str, Any]]
                       ) -> dict[tuple[str | None, int], int]:
    """The equal wall-clock budgets in seconds, by (dataset label, reference steps).

    Each is the largest median training time over the seeds of the reference configs at those
    steps, in whole seconds (at least 1), once every such trial is done (no entry before).
    """
    if study.equal_time is None:
        return {}
    seconds: dict[tuple[str | None, int], int] = {}
    for d in study.datasets:
        for steps in study.equal_time.steps:
            medians = []
            for label in study.equal_time.reference:
                mine = [(records.get(t.id) or {}) for t in tests
                        if (t.method, t.dataset, t.budget) == (label, d.label, Budget(steps))]
                times = [r.get("train_seconds") for r in mine if r.get("state") == "done"]
                if len(mine) < len(study.seeds) or len(times) < len(mine) or None in times:
                    break
                medians.append(statistics.median(float(s) for s in times))
            else:
                if medians:
                    seconds[d.label, steps] = max(1, round(max(medians)))
    return seconds


def recorded_equal_time(study: Study, records: Mapping[str, Mapping[str, Any]]
                        ) -> dict[tuple[str | None, int], int]:
    """The equal wall-clock budgets the store's equal-time trials were given.

    Keyed as :func:`equal_time_seconds` keys them. Once such a trial is recorded, its budget is
    the study's: a reference trial trained again later (its record removed) changes the
    references' times, but not the equal-time column, which would otherwise be planned anew
    under other ids and trained a second time.
    """
    if study.equal_time is None:
        return {}
    factor = study.equal_time.max_steps_factor
    seconds: dict[tuple[str | None, int], int] = {}
    for record in records.values():
        trial = record.get("trial") or {}
        budget = trial.get("budget") or {}
        if trial.get("phase") == "test" and budget.get("max_seconds") is not None:
            key = (trial.get("dataset"), int(budget["max_steps"]) // factor)
            seconds.setdefault(key, int(budget["max_seconds"]))
    return seconds


def time_trials(study: Study, selections: Mapping[tuple[str, str | None], Selection],
                seconds: Mapping[tuple[str | None, int], int]) -> list[Trial]:
    """The equal wall-clock ``test`` trials of every config but the references."""
    if study.equal_time is None:
        return []
    out = []
    for (dataset, steps), budget in seconds.items():
        overrides = next(d.overrides for d in study.datasets if d.label == dataset)
        for method in study.methods:
            chosen = selections.get((method.label, dataset))
            if chosen is None or method.label in study.equal_time.reference:
                continue
            out += [make_trial(study, method, dataset, overrides, "test", seed, chosen.point,
                               Budget(steps * study.equal_time.max_steps_factor, budget),
                               (chosen.recalibrate,))
                    for seed in study.seeds]
    return out


@dataclass(frozen=True)
class TrialCounts:
    """How many trials a study has, by phase, before any runs (``--dry_run``, ``status``).

    Attributes:
        selection: The ``select`` trials.
        test_known: The test trials of configs with nothing to select (known now).
        test_later: The test trials of configs with a choice (known once it is selected).
        equal_time: The equal wall-clock trials (known once the references are tested).
    """

    selection: int
    test_known: int
    test_later: int
    equal_time: int

    @property
    def test(self) -> int:
        """Every test trial at a step budget."""
        return self.test_known + self.test_later

    @property
    def total(self) -> int:
        """Every trial of the study."""
        return self.selection + self.test + self.equal_time


def known_trials(study: Study) -> tuple[list[Trial], list[Trial]]:
    """The trials known before any runs.

    The selection trials, and the test trials of the configs with nothing to select.
    """
    selection = selection_trials(study)
    return selection, test_trials(study, select(study, selection, {}, []))


def trial_counts(study: Study, known: tuple[list[Trial], list[Trial]] | None = None
                 ) -> TrialCounts:
    """The study's trial counts by phase (none of them run).

    ``known`` is :func:`known_trials`'s result, when the caller has it already.
    """
    selection, known = known_trials(study) if known is None else known
    later = sum(has_choice(study, m) for d in study.datasets for m in study.methods)
    timed = 0
    if study.equal_time is not None:
        timed = (sum(m.label not in study.equal_time.reference for m in study.methods)
                 * len(study.datasets) * len(study.equal_time.steps) * len(study.seeds))
    return TrialCounts(len(selection), len(known),
                       later * len(study.max_steps) * len(study.seeds), timed)
