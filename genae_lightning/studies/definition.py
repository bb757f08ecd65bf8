"""What a study is: the configs, datasets, budgets and evaluation it names.

:mod:`~genae_lightning.studies.spec` reads a study file into a :class:`Study`;
:mod:`~genae_lightning.studies.plan` expands it into trials.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Settings = tuple[tuple[str, Any], ...]  # dotted key -> value, in the order given


@dataclass(frozen=True)
class Method:
    """One compared config: its label, the bundled config it names, its own overrides and grid.

    Attributes:
        label: The study's name for it (``ae``, ``beta_vae``): rows of the report, W&B config.
        config: The bundled config's name (``ae_mnist``) or a config file's path.
        overrides: Settings of this config only, on top of the study's.
        grid: The selection grid: each point a tuple of settings; ``((),)`` without a grid.
    """

    label: str
    config: str
    overrides: Settings = ()
    grid: tuple[Settings, ...] = ((),)


@dataclass(frozen=True)
class Dataset:
    """A dataset of the study: its label and the data overrides that select it."""

    label: str | None
    overrides: Settings = ()


@dataclass(frozen=True)
class EqualTime:
    """Equal wall-clock budget: the reference configs' training time, given to the others.

    Attributes:
        reference: Config labels; the budget is the largest of their median training times
            over the seeds (median: one seed timed on a busier machine must not set it).
        steps: The reference runs' step budgets (among ``max_steps``); one equal-time column
            each.
        max_steps_factor: Equal-time runs stop at ``steps * max_steps_factor`` steps at most.
    """

    reference: tuple[str, ...]
    steps: tuple[int, ...]
    max_steps_factor: int = 20


@dataclass(frozen=True)
class Evaluation:
    """``genae evaluate``'s settings for every trial (see its ``--help``).

    Attributes:
        num_samples: Evaluation images and samples per sampler.
        knn_train_samples: Training codes for the 5-NN accuracy (and post-hoc priors fitted at
            evaluation).
        feature: FID features: ``inception``, a ``genae train-features`` file, or None (no FID).
        samplers: Samplers whose samples are scored.
        batch_size: Evaluation batch size.
        recalibrate_batchnorm: Choices of ``--recalibrate_batchnorm``; with several, each is
            scored on validation and the selection picks one (with the grid point).
        feature_extractor_weights_path: A local Inception weights file (``genae evaluate
            --feature_extractor_weights_path``; machines without network access), or None: the
            torch.hub cache, downloaded on first use. Where a file lies on this machine, not
            what is computed: like ``--data_root``, it is not part of the trials' ids, and the
            driver passes it to every evaluation (:class:`~genae_lightning.studies.trial.Job`)
            instead of storing it in the trials.
    """

    num_samples: int = 10_000
    knn_train_samples: int | None = 10_000
    feature: str | None = "inception"
    samplers: tuple[str, ...] = ("gaussian", "gmm")
    batch_size: int = 256
    recalibrate_batchnorm: tuple[int, ...] = (0,)
    feature_extractor_weights_path: str | None = None


@dataclass(frozen=True)
class Study:
    """A validated study file (:func:`~genae_lightning.studies.spec.load_study`).

    Attributes:
        name: The study's name: the W&B group of its trials.
        source: The file it was read from.
        methods: The compared configs, in the file's order.
        datasets: The datasets (one without a label when the file names none).
        seeds: The test seeds.
        selection_seed: The seed the grid is trained with (its run is reused for the test).
        selection_metric: Validation metric key the selection minimises (or maximises).
        selection_mode: ``min`` or ``max``.
        max_steps: The step budgets (test columns).
        selection_steps: The step budget of the selection runs.
        equal_time: The equal wall-clock budget, if any.
        metrics: The test metrics (the report's columns).
        evaluation: Evaluation settings.
        overrides: Settings of every trial.
        paper: The paper's values: config label -> metric key -> value.
        wandb: W&B logger settings (``project``, ``entity``), or None for no W&B runs.
        description: One line about the study.
    """

    name: str
    source: Path
    methods: tuple[Method, ...]
    datasets: tuple[Dataset, ...]
    seeds: tuple[int, ...]
    selection_seed: int
    selection_metric: str
    selection_mode: str
    max_steps: tuple[int, ...]
    selection_steps: int
    equal_time: EqualTime | None
    metrics: tuple[str, ...]
    evaluation: Evaluation
    overrides: Settings = ()
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    wandb: Mapping[str, str] | None = None
    description: str = ""

    def method(self, label: str) -> Method:
        """The config of this label."""
        return next(m for m in self.methods if m.label == label)
