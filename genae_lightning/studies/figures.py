"""The plots of ``genae study report``: metrics against the budget, and the selection grid.

Sizes are fixed by the content (no tight bounding box), so a figure's pixels are known:
:func:`budget_figure` is ``400 * metrics`` by ``300 * datasets`` pixels, :func:`selection_figure`
``800`` by ``100 + 25 * grid rows``.
"""

import math
from pathlib import Path
from typing import Any

from genae_lightning.commands.report import mean_sd
from genae_lightning.studies.results import Result, Results, metric_title

DPI = 100
PANEL_INCHES = (4.0, 3.0)  # one metric of one dataset
GRID_WIDTH_INCHES = 8.0
GRID_ROW_INCHES = 0.25


def pyplot() -> Any:
    """Pyplot of matplotlib on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def budget_figure(results: Results, path: Path) -> Path:
    """Each test metric against the budget, per config: mean ± sd over the seeds as error bars.

    One row of panels per dataset, one column per metric. Step budgets are joined by lines;
    an equal wall-clock result is an open marker at the steps it trained (mean ± sd).
    """
    plt = pyplot()
    study = results.study
    datasets, metrics = study.datasets, study.metrics
    fig, axes = plt.subplots(len(datasets), len(metrics), squeeze=False, dpi=DPI,
                             figsize=(PANEL_INCHES[0] * len(metrics),
                                      PANEL_INCHES[1] * len(datasets)))
    colors = {m.label: f"C{i % 10}" for i, m in enumerate(study.methods)}
    for row, dataset in zip(axes, datasets, strict=True):
        for ax, metric in zip(row, metrics, strict=True):
            for method in study.methods:
                color = colors[method.label]
                steps = [points(results.of(method.label, dataset.label, ("steps", s)), metric)
                         for s in study.max_steps]
                drawn = [(s, p) for s, p in zip(study.max_steps, steps, strict=True) if p]
                if drawn:
                    ax.errorbar([s for s, _ in drawn], [p[0] for _, p in drawn],
                                yerr=[p[1] for _, p in drawn], fmt="-o", ms=4, capsize=3,
                                color=color, label=method.label)
                for s in study.equal_time.steps if study.equal_time else ():
                    runs = results.of(method.label, dataset.label, ("time", s))
                    timed = points(runs, metric)
                    trained = mean_sd([float(r.steps) for r in runs if r.steps])
                    if timed and trained[0] is not None:
                        ax.errorbar(trained[0], timed[0], xerr=trained[1] or 0, yerr=timed[1],
                                    fmt="o", mfc="none", ms=6, capsize=3, color=color)
            ax.set(xlabel="training steps (open: equal time)", ylabel=metric_title(metric),
                   title=dataset.label or study.name)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save(fig, path)


def points(runs: list[Result], metric: str) -> tuple[float, float] | None:
    """Mean and sd (0 for one seed) of a metric over runs; None without a finite value."""
    mean, sd = mean_sd([v for r in runs if (v := r.value(metric)) is not None])
    return None if mean is None else (mean, sd or 0.0)


def selection_figure(results: Results, path: Path) -> Path | None:
    """The selection grid: each grid point's validation metric as a bar, the selected in red.

    Failed and diverged runs are named without a bar; the axis is logarithmic when the values
    span more than 30x. None (nothing written) for a study without selection runs.
    """
    grid = results.grid
    if not grid:
        return None
    plt = pyplot()
    study = results.study
    fig, ax = plt.subplots(dpi=DPI, figsize=(GRID_WIDTH_INCHES,
                                             1 + GRID_ROW_INCHES * len(grid)))
    labels, values, colors = [], [], []
    for g in grid:
        finite = g.value is not None and math.isfinite(g.value)
        state = "" if finite else (" (failed)" if g.value is None else " (diverged)")
        where = f" on {g.dataset}" if g.dataset and len(study.datasets) > 1 else ""
        labels.append(f"{g.method}{where}: {g.setting}" + (f" [{g.choice}]" if g.choice else "")
                      + state)
        values.append(g.value if finite else math.nan)
        colors.append("crimson" if g.selected else "steelblue")
    y = range(len(grid))
    ax.barh(y, values, color=colors)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) > 30 * min(finite):
        ax.set_xscale("log")
    ax.set_xlabel(f"validation {metric_title(study.selection_metric)} "
                  f"({study.selection_mode}; red: selected)")
    ax.set_title(f"{study.name}: selection grid, seed {study.selection_seed}")
    return save(fig, path)


def save(fig: Any, path: Path) -> Path:
    """Save a figure as PNG at its own size and close it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path
