"""A study file (YAML) read into a validated :class:`Study`.

A study names the configs it compares (bundled config names, or paths), the datasets, the
seeds, the selection grid per config, the budgets, the selection metric on the validation split,
the test metrics and the evaluation settings. Bundled studies live in ``configs/studies/`` and
are found by name, like configs (:func:`resolve_study`). The format (docs/studies.md)::

    name: table1_mnist              # optional: the file's stem; the W&B group of its trials
    description: one line
    configs:                        # label -> bundled config name (or path), or a mapping
      ae: ae_mnist
      ae_l2: {config: ae_l2_mnist, overrides: {model.init_args.l2_weight: 0.01}}
    datasets:                       # optional: label -> data overrides; one trial set each
      fashion_mnist: {data: genae_lightning.data.FashionMNIST}
    seeds: [0, 1, 2]
    selection:
      seed: 0                       # the grid is trained with this seed only
      metric: cfid/gmm              # on the validation split
      mode: min                     # min (default) or max
      grid:                         # per config label: dotted key -> values (a product), or a
        ae_l2:                      # list of such mappings (their union)
          model.init_args.l2_weight: [0.01, 0.1]
    budgets:
      max_steps: [2000]             # one test column per value
      selection_steps: 2000         # default: the first max_steps
      equal_time:                   # optional: the other configs trained for the reference's time
        reference: [injflow]        # config labels; the slowest one's median time over seeds
        steps: [2000]               # the references' step budgets (default: selection_steps)
        max_steps_factor: 20        # equal-time runs stop at this many times `steps` at most
    metrics: [cfid/recon, cfid/gaussian, cfid/gmm]   # test metrics (the report's columns)
    evaluation:                     # genae evaluate's settings
      num_samples: 5000
      knn_train_samples: 10000
      feature: path/to/classifier.pt   # inception, a `genae train-features` file, or null: no FID
      samplers: [gaussian, gmm]
      batch_size: 256
      recalibrate_batchnorm: [0, 100]  # a list: each is scored on validation, one selected
      feature_extractor_weights_path: null  # with feature: inception, a local Inception
                                    # weights file (offline machines); null: the torch.hub cache
    overrides:                      # every trial: dotted key -> value
      model.init_args.backbone.init_args.width: 0.25
    paper: {ae: {cfid/gmm: 12.14}}  # optional: the paper's values, shown beside by the report
    wandb: {project: genae-lightning}  # or false: no W&B runs

A study file is data: nothing it names is imported. Configs are looked up by name, and every
class an override names is checked against genae's allow-list
(:func:`~genae_lightning.trust.check_names`) before any trial runs; overrides reach ``genae fit``
as command-line flags, which go through LightningCLI's own checks. Errors name the file, the
key, what was expected and how to fix it (:class:`StudyError`).
"""

import difflib
import itertools
import math
import re
from pathlib import Path
from typing import Any

from genae_lightning.commands.config_files import config_dir, read_yaml, resolve_config
from genae_lightning.studies.definition import (
    Dataset,
    EqualTime,
    Evaluation,
    Method,
    Settings,
    Study,
)

REQUIRED_KEYS = ("configs", "seeds", "selection", "budgets", "evaluation")
TOP_KEYS = ("name", "description", "configs", "datasets", "seeds", "selection", "budgets",
            "metrics", "evaluation", "overrides", "paper", "wandb")
SELECTION_KEYS = ("seed", "metric", "mode", "grid")
BUDGET_KEYS = ("max_steps", "selection_steps", "equal_time")
EQUAL_TIME_KEYS = ("reference", "steps", "max_steps_factor")
EVALUATION_KEYS = ("num_samples", "knn_train_samples", "feature", "samplers", "batch_size",
                   "recalibrate_batchnorm", "feature_extractor_weights_path")
INCEPTION = ("inception", "2048")  # evaluation.feature values of Inception-v3 features
# Settings a study sets itself (seeds, budgets, run folders, loggers): no override may set them.
RESERVED = ("config", "c", "ckpt_path", "seed_everything", "trainer.max_steps",
            "trainer.max_time", "trainer.default_root_dir", "trainer.logger", "print_config")
DOTTED_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
LABEL = re.compile(r"[a-z0-9][a-z0-9_]*")
SAMPLERS = ("prior", "gaussian", "gmm")

class StudyError(ValueError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


# ---------------------------------------------------------------------------------------------
# finding study files


def study_dir() -> Path:
    """The bundled studies: ``configs/studies/`` (``genae_lightning/configs/studies`` installed)."""
    return config_dir() / "studies"


def available_studies() -> dict[str, Path]:
    """Bundled studies by name (the file's stem)."""
    return {p.stem: p for p in sorted(study_dir().glob("*.yaml"))}


def resolve_study(value: str | Path) -> Path:
    """The study file ``value`` names: an existing file, else a bundled study's name.

    Raises:
        FileNotFoundError: Neither; the message lists the bundled studies and close matches.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    name = str(value).removeprefix("configs/studies/").removesuffix(".yaml")
    studies = available_studies()
    if name in studies:
        return studies[name]
    close = difflib.get_close_matches(name, list(studies), n=3, cutoff=0.5)
    raise FileNotFoundError(
        f"study {str(value)!r}: expected a study file or the name of a bundled study, got "
        f"neither (no such file, and no {name}.yaml in {study_dir()}). "
        + (f"Did you mean {' or '.join(close)}? " if close else "")
        + f"Bundled studies: {', '.join(studies) or 'none'}.")


def load_study(value: str | Path, check_classes: bool = True) -> Study:
    """Read and validate a study file (a path or a bundled study's name).

    Args:
        value: The file, or a bundled study's name (``tiny``, ``table1_mnist``).
        check_classes: Check every class an override names against the allow-list (imports
            genae's methods, data and callbacks to know them).

    Raises:
        StudyError: The file is not a valid study; the message says where and how to fix it.
        FileNotFoundError: ``value`` names no file and no bundled study.
    """
    path = resolve_study(value)
    try:
        data = read_yaml(path)
    except ValueError as err:
        raise StudyError(str(err)) from None
    study = _Reader(path).study(data)
    if check_classes:
        check_override_classes(study)
    return study


# ---------------------------------------------------------------------------------------------
# validation


class _Reader:
    """Reads one study file's mapping; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, expected: str, got: Any, fix: str) -> StudyError:
        shown = repr(got) if len(repr(got)) <= 80 else repr(got)[:77] + "..."
        return StudyError(f"{self.path}: {key}: expected {expected}, got {shown}; {fix}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None
                ) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "a mapping", value, "write it as `key: value` lines")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    close = difflib.get_close_matches(str(name), allowed, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise self.fail(f"{key}.{name}".lstrip("."), f"one of {', '.join(allowed)}",
                                    name, f"{hint}remove or rename the key")
        return value

    def integer(self, value: Any, key: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"an integer >= {minimum}", value, "write a whole number")
        return value

    def integers(self, value: Any, key: str, minimum: int = 0) -> tuple[int, ...]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.fail(key, "at least one integer", value, "list one or more values")
        out = tuple(self.integer(v, key, minimum) for v in values)
        if len(set(out)) != len(out):
            raise self.fail(key, "distinct values", value, "remove the repeated values")
        return out

    def text(self, value: Any, key: str, pattern: re.Pattern | None = None) -> str:
        if not isinstance(value, str) or not value or (
                pattern is not None and not pattern.fullmatch(value)):
            what = f"a string matching {pattern.pattern}" if pattern else "a non-empty string"
            raise self.fail(key, what, value, "write it as plain text")
        return value

    def settings(self, value: Any, key: str) -> Settings:
        """Dotted key -> value overrides, checked for form and for keys the study sets."""
        out = []
        for name, setting in self.mapping(value, key).items():
            where = f"{key}.{name}"
            if not isinstance(name, str) or not DOTTED_KEY.fullmatch(name):
                raise self.fail(where, "a dotted setting such as model.init_args.latent_dim",
                                name, "write the key as `genae fit --<key>` takes it")
            if name in RESERVED or any(name.startswith(r + ".") for r in RESERVED):
                raise self.fail(where, "a setting the study does not set itself", name,
                                "seeds, budgets (trainer.max_steps/max_time), run folders and "
                                "loggers come from the study's seeds:, budgets: and wandb: keys")
            out.append((name, _plain(setting, where, self)))
        return tuple(out)

    def grid(self, value: Any, key: str) -> tuple[Settings, ...]:
        """A mapping of value lists (their product) or a list of such mappings (the union)."""
        blocks = value if isinstance(value, list) else [value]
        if not blocks:
            raise self.fail(key, "a mapping of setting -> values, or a list of them", value,
                            "give at least one setting")
        points: list[Settings] = []
        for i, block in enumerate(blocks):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            axes = self.settings(block, where)
            if not axes:
                raise self.fail(where, "a mapping of setting -> values", block,
                                "give at least one setting")
            choices = [[(k, v) for v in (vals if isinstance(vals, list) else [vals])]
                       for k, vals in axes]
            for k, vals in axes:
                if isinstance(vals, list) and not vals:
                    raise self.fail(f"{where}.{k}", "a non-empty list of values", vals,
                                    "list the values to try")
            points += [tuple(p) for p in itertools.product(*choices)]
        if len(set(map(_key, points))) != len(points):
            raise self.fail(key, "distinct grid points", value, "remove the repeated points")
        return tuple(points)

    def study(self, data: Any) -> Study:
        top = self.mapping(data, "", TOP_KEYS)
        for required in REQUIRED_KEYS:
            if required not in top:
                raise StudyError(f"{self.path}: the key `{required}:` is missing; a study "
                                 f"needs {', '.join(REQUIRED_KEYS)} (docs/studies.md)")
        name = self.text(top.get("name", self.path.stem), "name", LABEL)
        selection = self.mapping(top["selection"], "selection", SELECTION_KEYS)
        grids = self.mapping(selection.get("grid"), "selection.grid")
        methods = self.methods(top["configs"], grids)
        datasets = tuple(
            Dataset(self.text(label, "datasets", LABEL), self.settings(data, f"datasets.{label}"))
            for label, data in self.mapping(top.get("datasets"), "datasets").items())
        seeds = self.integers(top["seeds"], "seeds")
        budgets = self.mapping(top["budgets"], "budgets", BUDGET_KEYS)
        if "max_steps" not in budgets:
            raise self.fail("budgets.max_steps", "one or more step counts", None,
                            "add `max_steps: [<steps>]`")
        max_steps = self.integers(budgets["max_steps"], "budgets.max_steps", 1)
        selection_steps = self.integer(budgets.get("selection_steps", max_steps[0]),
                                       "budgets.selection_steps", 1)
        mode = selection.get("mode", "min")
        if mode not in ("min", "max"):
            raise self.fail("selection.mode", "min or max", mode,
                            "min for FIDs and errors, max for accuracies")
        if "metric" not in selection:
            raise self.fail("selection.metric", "a validation metric key such as cfid/gmm",
                            None, "add `metric:` under selection:")
        metrics = top.get("metrics", [selection["metric"]])
        return Study(
            name=name, source=self.path, methods=methods, datasets=datasets or (Dataset(None),),
            seeds=seeds,
            selection_seed=self.integer(selection.get("seed", seeds[0]), "selection.seed"),
            selection_metric=self.text(selection["metric"], "selection.metric"),
            selection_mode=mode, max_steps=max_steps, selection_steps=selection_steps,
            equal_time=self.equal_time(budgets.get("equal_time"), methods, selection_steps,
                                       max_steps),
            metrics=tuple(self.text(m, "metrics") for m in
                          (metrics if isinstance(metrics, list) else [metrics])),
            evaluation=self.evaluation(top["evaluation"]),
            overrides=self.settings(top.get("overrides"), "overrides"),
            paper=self.paper(top.get("paper"), methods), wandb=self.wandb(top.get("wandb", {})),
            description=str(top.get("description", "")))

    def methods(self, value: Any, grids: dict[str, Any]) -> tuple[Method, ...]:
        entries = self.mapping(value, "configs")
        if not entries:
            raise self.fail("configs", "one or more `label: config` entries", value,
                            "name the configs to compare, e.g. `ae: ae_mnist`")
        methods = []
        for label, entry in entries.items():
            key = f"configs.{label}"
            self.text(label, "configs", LABEL)
            spec = self.mapping(entry, key, ("config", "overrides")) if isinstance(
                entry, dict) else {"config": entry}
            config = self.text(spec.get("config"), f"{key}.config")
            try:
                resolve_config(config)
            except (FileNotFoundError, IsADirectoryError) as err:
                raise StudyError(f"{self.path}: {key}: {err}") from None
            grid = self.grid(grids[label], f"selection.grid.{label}") if label in grids else ((),)
            methods.append(Method(label, config, self.settings(spec.get("overrides"), key), grid))
        for label in grids:
            if label not in entries:
                raise self.fail(f"selection.grid.{label}",
                                f"a label of configs: ({', '.join(entries)})", label,
                                "use the config's label, or add it under configs:")
        return tuple(methods)

    def equal_time(self, value: Any, methods: tuple[Method, ...], steps: int,
                   max_steps: tuple[int, ...]) -> EqualTime | None:
        if value is None:
            return None
        spec = self.mapping(value, "budgets.equal_time", EQUAL_TIME_KEYS)
        labels = [m.label for m in methods]
        reference = spec.get("reference")
        reference = tuple(reference if isinstance(reference, list) else [reference])
        for label in reference:
            if label not in labels:
                raise self.fail("budgets.equal_time.reference",
                                f"config labels ({', '.join(labels)})", label,
                                "name the configs whose training time sets the budget")
        budgets = self.integers(spec.get("steps", steps), "budgets.equal_time.steps", 1)
        for budget in budgets:
            if budget not in max_steps:
                raise self.fail("budgets.equal_time.steps", f"budgets among max_steps "
                                f"{list(max_steps)}", budget,
                                "time the references at a budget they are tested with")
        return EqualTime(reference, budgets,
                         self.integer(spec.get("max_steps_factor", 20),
                                      "budgets.equal_time.max_steps_factor", 1))

    def evaluation(self, value: Any) -> Evaluation:
        spec = self.mapping(value, "evaluation", EVALUATION_KEYS)
        defaults = Evaluation()
        feature = spec.get("feature", defaults.feature)
        if feature is not None:
            self.text(feature, "evaluation.feature")
        weights = spec.get("feature_extractor_weights_path")
        if weights is not None:
            self.text(weights, "evaluation.feature_extractor_weights_path")
            if feature not in INCEPTION:
                raise self.fail("evaluation.feature_extractor_weights_path",
                                "no Inception weights file unless `feature: inception`", weights,
                                f"remove the key (evaluation.feature is {feature!r}), or set "
                                "`feature: inception`")
            weights = str(Path(weights).expanduser())  # ~/... as a shell would read it
        samplers = tuple(spec.get("samplers", defaults.samplers))
        for sampler in samplers:
            if sampler not in SAMPLERS:
                raise self.fail("evaluation.samplers", f"samplers among {', '.join(SAMPLERS)}",
                                sampler, "remove it")
        knn = spec.get("knn_train_samples", defaults.knn_train_samples)
        return Evaluation(
            num_samples=self.integer(spec.get("num_samples", defaults.num_samples),
                                     "evaluation.num_samples", 1),
            knn_train_samples=None if knn is None else self.integer(
                knn, "evaluation.knn_train_samples", 1),
            feature=feature, samplers=samplers,
            batch_size=self.integer(spec.get("batch_size", defaults.batch_size),
                                    "evaluation.batch_size", 1),
            recalibrate_batchnorm=self.integers(spec.get("recalibrate_batchnorm", 0),
                                                "evaluation.recalibrate_batchnorm"),
            feature_extractor_weights_path=weights)

    def paper(self, value: Any, methods: tuple[Method, ...]) -> dict[str, dict[str, float]]:
        labels = tuple(m.label for m in methods)
        out: dict[str, dict[str, float]] = {}
        for label, values in self.mapping(value, "paper", labels).items():
            out[label] = {}
            for metric, number in self.mapping(values, f"paper.{label}").items():
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise self.fail(f"paper.{label}.{metric}", "a number", number,
                                    "write the paper's value as a number")
                out[label][str(metric)] = float(number)
        return out

    def wandb(self, value: Any) -> dict[str, str] | None:
        if value is False:
            return None
        spec = self.mapping(value, "wandb", ("project", "entity"))
        out = {"project": self.text(spec.get("project", "genae-lightning"), "wandb.project")}
        if spec.get("entity") is not None:
            out["entity"] = self.text(spec["entity"], "wandb.entity")
        return out


def _plain(value: Any, key: str, reader: _Reader) -> Any:
    """A setting's value as plain data (strings, numbers, booleans, null, lists, mappings)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise reader.fail(key, "a finite number", value, "write a finite value")
        return value
    if isinstance(value, list):
        return [_plain(v, key, reader) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{key}.{k}", reader) for k, v in value.items()}
    raise reader.fail(key, "a string, number, boolean, null, list or mapping", value,
                      "write plain YAML values (dates and other types are not settings)")


def _key(settings: Settings) -> str:
    """A hashable, order-free key of settings (for duplicate checks)."""
    return repr(sorted((k, repr(v)) for k, v in settings))


def nested(key: str, value: Any) -> dict[str, Any]:
    """A dotted setting as the nested mapping a config file would hold.

    >>> nested("model.init_args.eta", 0.1)
    {'model': {'init_args': {'eta': 0.1}}}
    """
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def check_files(study: Study) -> None:
    """Check that the files the study's evaluation names exist (before any trial runs).

    ``evaluation.feature`` when it names a ``genae train-features`` file, and
    ``evaluation.feature_extractor_weights_path``. Relative paths are read from the working
    directory, as the trials read them. ``genae study run`` checks this before it starts a
    trial (:func:`~genae_lightning.studies.run.preflight`); reading a study (``genae study
    report``, ``list``) does not, so a study reads anywhere.

    Raises:
        StudyError: A file is missing; the message names the study file, the key, the value and
            the fix.
    """
    from genae_lightning.features.extractors import INCEPTION_URL

    reader, evaluation = _Reader(study.source), study.evaluation
    here = f"relative paths are read from the working directory, {Path.cwd()}"
    feature = evaluation.feature
    if feature is not None and feature not in INCEPTION and not Path(feature).is_file():
        raise reader.fail(
            "evaluation.feature", "'inception', null or an existing `genae train-features` "
            "file", feature, f"no such file ({here}): run the study from the folder the path "
            "is relative to (the repository root for the bundled studies), give the file's "
            "path, train one (`genae train-features --data MNIST --data.root DATA --out "
            "classifier.pt`), or write `feature: null` (no FID)")
    weights = evaluation.feature_extractor_weights_path
    if weights is not None and not Path(weights).is_file():
        name = INCEPTION_URL.rsplit("/", 1)[-1]
        raise reader.fail(
            "evaluation.feature_extractor_weights_path", "an existing Inception weights file",
            weights, f"no such file ({here}): download {name} from {INCEPTION_URL} and give its "
            "path, or remove the key to use the torch.hub cache (downloaded on first use)")


def check_override_classes(study: Study) -> None:
    """Check every class the study's overrides name against genae's allow-list.

    Raises:
        StudyError: An override names a class genae does not load from a file.
    """
    import genae_lightning.callbacks  # noqa: F401  (defines the classes the allow-list knows)
    import genae_lightning.data  # noqa: F401
    import genae_lightning.loggers  # noqa: F401
    import genae_lightning.methods  # noqa: F401
    from genae_lightning.trust import CONFIG_KINDS, UntrustedClassError, check_names

    groups = [("overrides", study.overrides)]
    groups += [(f"datasets.{d.label}", d.overrides) for d in study.datasets]
    for m in study.methods:
        groups.append((f"configs.{m.label}.overrides", m.overrides))
        groups += [(f"selection.grid.{m.label}", point) for point in m.grid]
    for where, settings in groups:
        for key, value in settings:
            try:
                check_names(nested(key, value), where=f"{study.source} ({where})", key="",
                            kinds=CONFIG_KINDS)
            except UntrustedClassError as err:
                raise StudyError(f"{err} (study key {where}.{key})") from None
