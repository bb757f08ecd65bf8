"""Does a method's edge over another change with the budget? Studies' step budgets, joined.

A budget question spans studies: the 2000-step ``table1_*`` study and the ``budget_*`` study at
other step budgets (and the standalone ``bench/table1.py`` runs of either). This reads each
source with :mod:`genae_lightning.studies.results` (a study's store, or a ``results.jsonl`` read
as that study), joins their step-budget columns per method, and prints, in markdown:

1. per method and step budget: the test metric's mean ± sample sd over the seeds, and its source;
2. per method other than ``--baseline`` and step budget: the difference of the means from the
   baseline's, and Welch's two-sided t-test between the two sets of seeds (``genae study
   report``'s test).

With ``--figure`` it also draws both against the steps (log axis): the metric per method (error
bars: sd over seeds), and the difference from the baseline (error bars: its standard error,
sqrt(sd_a^2/n_a + sd_b^2/n_b)). Equal wall-clock columns are left out: they belong to one
machine and load (their study's report shows them).

    python bench/budget_curve.py --metric cfid/gmm --baseline ae --methods ae beta_vae injflow \\
        --source table1_mnist=bench/results/studies/table1_mnist \\
        --source budget_mnist=bench/results/studies/budget_mnist --figure budget_mnist.png

A method's budget found in several sources is taken from the one with the most finished seeds,
the first given of those on a tie (the table says which), so a study still running gives way to
complete runs of the same budget until it has as many seeds.
"""

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from genae_lightning.commands.report import mean_sd
from genae_lightning.studies import results as sources
from genae_lightning.studies.figures import pyplot, save
from genae_lightning.studies.report import welch_p
from genae_lightning.studies.results import Results, metric_format, metric_title
from genae_lightning.studies.spec import load_study


@dataclass(frozen=True)
class Cell:
    """One method at one step budget: the metric by seed, and the source it came from."""

    values: dict[int, float]
    source: int  # its place in the sources given, from 1

    @property
    def mean(self) -> float:
        return mean_sd(list(self.values.values()))[0]

    @property
    def sd(self) -> float:
        """Sample sd (0 for one seed)."""
        return mean_sd(list(self.values.values()))[1] or 0.0


def read_source(spec: str) -> tuple[str, Results]:
    """``STUDY=PATH``: a study's store (a folder), or a ``results.jsonl`` read as that study."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--source {spec!r}: expected STUDY=PATH (a bundled study's name or "
                         "file, then its store's folder or a bench/table1.py results.jsonl), "
                         "e.g. table1_mnist=bench/results/studies/table1_mnist")
    study = load_study(name, check_classes=False)  # read only: nothing runs
    if Path(path).is_dir():
        return name, sources.from_store(study, path)
    return name, sources.from_table1_jsonl(study, path)


def join(read: Sequence[tuple[str, Results]], methods: Sequence[str], metric: str
         ) -> dict[str, dict[int, Cell]]:
    """Method -> step budget -> cell, over the sources' step columns (most seeds, then first)."""
    out: dict[str, dict[int, Cell]] = {m: {} for m in methods}
    for number, (_, results) in enumerate(read, 1):
        dataset = results.study.datasets[0].label
        for kind, steps in results.columns(dataset):
            if kind != "steps":
                continue
            for method in methods:
                values = {r.seed: v for r in results.of(method, dataset, (kind, steps))
                          if (v := r.value(metric)) is not None and math.isfinite(v)}
                held = out[method].get(steps)
                if values and (held is None or len(values) > len(held.values)):
                    out[method][steps] = Cell(values, number)
    return out


def difference(a: Cell, b: Cell) -> tuple[float, float, float | None]:
    """Mean of ``a`` minus ``b``, its standard error, and Welch's p (None: too few seeds)."""
    se = math.sqrt(a.sd ** 2 / len(a.values) + b.sd ** 2 / len(b.values))
    return a.mean - b.mean, se, welch_p(list(a.values.values()), list(b.values.values()))


def all_budgets(cells: dict[str, dict[int, Cell]]) -> list[int]:
    """Every step budget any method has, in order."""
    return sorted({s for by_steps in cells.values() for s in by_steps})


def render(cells: dict[str, dict[int, Cell]], metric: str, baseline: str | None,
           read: Sequence[tuple[str, Results]]) -> str:
    """The markdown: the metric per method and budget, the differences from the baseline, and
    the sources (numbered as the cells cite them)."""
    fmt = metric_format(metric)
    budgets = all_budgets(cells)
    head = "| method | " + " | ".join(f"{s} steps" for s in budgets) + " |"
    rule = "|---|" + "---|" * len(budgets)
    lines = [f"Test {metric_title(metric)}, mean ± sd over seeds (seeds; [source]):", "", head,
             rule]
    for method, by_steps in cells.items():
        row = []
        for s in budgets:
            c = by_steps.get(s)
            row.append("–" if c is None else f"{c.mean:{fmt}} ± {c.sd:{fmt}} "
                                              f"({len(c.values)}; [{c.source}])")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    if baseline:
        lines += ["", f"Difference from {baseline} (negative: lower {metric_title(metric)}), "
                  "Welch's two-sided t-test p:", "", head, rule]
        for method, by_steps in cells.items():
            if method == baseline:
                continue
            row = []
            for s in budgets:
                a, b = by_steps.get(s), cells[baseline].get(s)
                if a is None or b is None:
                    row.append("–")
                    continue
                diff, _, p = difference(a, b)
                shown = "-" if p is None else "<0.01" if p < 0.005 else f"{p:.2f}"
                row.append(f"{diff:+{fmt}} (p {shown})")
            lines.append(f"| {method} - {baseline} | " + " | ".join(row) + " |")
    lines += ["", "Sources:"] + [f"[{i}] {name}: {results.source}"
                                 for i, (name, results) in enumerate(read, 1)]
    return "\n".join(lines) + "\n"


def figure(cells: dict[str, dict[int, Cell]], metric: str, baseline: str | None,
           title: str, path: Path) -> Path:
    """The metric against the steps per method, and (with a baseline) the differences."""
    plt = pyplot()
    panels = 2 if baseline else 1
    fig, axes = plt.subplots(1, panels, squeeze=False, figsize=(4.5 * panels, 3.2), dpi=100)
    ax = axes[0][0]
    for i, (method, by_steps) in enumerate(cells.items()):
        steps = sorted(by_steps)
        ax.errorbar(steps, [by_steps[s].mean for s in steps], [by_steps[s].sd for s in steps],
                    fmt="-o", ms=4, capsize=3, color=f"C{i % 10}", label=method)
    ax.set(xscale="log", xlabel="training steps", ylabel=f"test {metric_title(metric)}",
           title=f"{title}: mean ± sd over seeds")
    ax.legend(fontsize=7)
    if baseline:
        ax = axes[0][1]
        ax.axhline(0.0, color="0.5", lw=0.8)
        for i, (method, by_steps) in enumerate(cells.items()):
            steps = sorted(s for s in by_steps if s in cells[baseline])
            if method == baseline or not steps:
                continue
            diffs = [difference(by_steps[s], cells[baseline][s]) for s in steps]
            ax.errorbar(steps, [d[0] for d in diffs], [d[1] for d in diffs], fmt="-o", ms=4,
                        capsize=3, color=f"C{i % 10}", label=f"{method} - {baseline}")
        ax.set(xscale="log", xlabel="training steps", ylabel=f"difference from {baseline}",
               title="difference ± standard error")
        ax.legend(fontsize=7)
    budgets = all_budgets(cells)
    for ax in axes[0]:
        ax.set_xticks(budgets, [str(s) for s in budgets])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    return save(fig, path)


def main(argv: list[str] | None = None) -> str:
    """Parse the arguments, join the sources, print (and draw) and return the markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", action="append", required=True, metavar="STUDY=PATH",
                        help="a study and its store's folder, or a bench/table1.py "
                             "results.jsonl read as that study; repeat (a budget comes from the "
                             "source with the most seeds, the first on a tie)")
    parser.add_argument("--methods", nargs="+", required=True,
                        help="config labels, as in the studies (e.g. ae beta_vae injflow)")
    parser.add_argument("--metric", default="cfid/gmm", help="a test metric of the studies")
    parser.add_argument("--baseline", default=None,
                        help="a method to take the others' differences from")
    parser.add_argument("--figure", default=None, help="write the plot here (PNG)")
    parser.add_argument("--title", default=None, help="the plot's title (default: the "
                        "first source's dataset)")
    args = parser.parse_args(argv)
    if args.baseline and args.baseline not in args.methods:
        parser.error(f"--baseline {args.baseline!r} is not one of --methods "
                     f"{' '.join(args.methods)}")
    try:
        read = [read_source(spec) for spec in args.source]
    except (ValueError, FileNotFoundError) as err:
        sys.exit(str(err))
    cells = join(read, args.methods, args.metric)
    empty = [m for m, by_steps in cells.items() if not by_steps]
    if empty:
        sys.exit(f"no finished test trial of {', '.join(empty)} with {args.metric} at a step "
                 f"budget in {', '.join(args.source)}: check the labels (a study's configs) "
                 "and wait for its test trials (genae study status)")
    text = render(cells, args.metric, args.baseline, read)
    print(text, end="")
    if args.figure:
        first = read[0][1]
        title = args.title or first.study.datasets[0].label or first.study.name
        print(f"figure: {figure(cells, args.metric, args.baseline, title, Path(args.figure))}")
    return text


if __name__ == "__main__":
    main()
