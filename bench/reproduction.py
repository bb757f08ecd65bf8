"""Does a study reproduce the standalone ``bench/table1.py``'s committed results?

Reads both with :mod:`genae_lightning.studies.results` (the study's store, and the script's
``results.jsonl`` read as the same ``table1_*`` study) and prints, in markdown:

1. the selection: per method, the setting and BatchNorm choice each chose;
2. per method, budget column (equal steps, equal time) and test metric: the mean ± sample sd
   over the seeds on each side, the difference of the means, and Welch's two-sided t-test
   (``genae study report``'s test) between the two sets of seeds. "within seed noise" when
   p >= ``--alpha``, "differs" when below; "n/a" with fewer than 2 seeds on a side;
3. per seed: how many trials give the same value on both sides (to 4 decimals), by metric.

    python bench/reproduction.py table1_mnist --root bench/results/studies/table1_mnist \\
        --against bench/results/table1/mnist/results.jsonl

Only trials finished on both sides count, so it can be run while the study is still running.
"""

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from genae_lightning.studies import results as sources
from genae_lightning.studies.report import welch_p
from genae_lightning.studies.results import Column, Results, metric_format, metric_title
from genae_lightning.studies.spec import load_study

ALPHA = 0.05


@dataclass(frozen=True)
class Row:
    """One method, budget column and metric, compared between the two sources."""

    method: str
    column: Column
    metric: str
    ours: dict[int, float]  # seed -> value (the study)
    theirs: dict[int, float]  # seed -> value (the script)
    p: float | None

    def verdict(self, alpha: float) -> str:
        """``within seed noise``, ``differs`` or ``n/a`` (too few seeds for the test)."""
        if len(self.ours) < 2 or len(self.theirs) < 2:
            return "n/a"
        if self.p is None:  # no spread on either side: equal means, or different ones
            same = statistics.mean(self.ours.values()) == statistics.mean(self.theirs.values())
            return "within seed noise" if same else "differs"
        return "within seed noise" if self.p >= alpha else "differs"

    def same_seeds(self) -> tuple[int, int]:
        """(seeds equal to 4 decimals, seeds on both sides)."""
        both = self.ours.keys() & self.theirs.keys()
        return sum(round(self.ours[s], 4) == round(self.theirs[s], 4) for s in both), len(both)


def values(results: Results, method: str, column: Column, metric: str) -> dict[int, float]:
    """Seed -> the metric's finite value, for one method and budget column."""
    out = {}
    for result in results.of(method, results.study.datasets[0].label, column):
        value = result.value(metric)
        if value is not None:
            out[result.seed] = value
    return out


def compare(ours: Results, theirs: Results, metrics: Sequence[str]) -> list[Row]:
    """The rows of every method, budget column and metric with results on both sides."""
    rows = []
    dataset = ours.study.datasets[0].label
    columns = [c for c in ours.columns(dataset) if c in theirs.columns(dataset)]
    for method in (m.label for m in ours.study.methods):
        for column in columns:
            for metric in metrics:
                a, b = (values(r, method, column, metric) for r in (ours, theirs))
                if a and b:
                    rows.append(Row(method, column, metric, a, b,
                                    welch_p(list(a.values()), list(b.values()))))
    return rows


def mean_sd(seeds: dict[int, float], fmt: str) -> str:
    """``mean ± sd (n=k)``; the sd only with 2 seeds or more."""
    data = list(seeds.values())
    text = format(statistics.mean(data), fmt)
    if len(data) > 1:
        text += f" ± {format(statistics.stdev(data), fmt)}"
    return f"{text} (n={len(data)})"


def column_title(column: Column) -> str:
    """``steps=2000``, or ``equal time`` (the two sides' time budgets may differ)."""
    if column[0] == "steps":
        return sources.budget_name(column, None)
    return f"equal time ({column[1]})"


def render(ours: Results, theirs: Results, rows: list[Row], alpha: float = ALPHA) -> str:
    """The markdown of the selections, the comparison rows and the per-seed agreement."""
    lines = ["Selection (setting, BatchNorm choice; validation metric):", "",
             "| method | bench/table1.py | genae study run |", "|---|---|---|"]
    for method in (m.label for m in ours.study.methods):
        key = (method, ours.study.datasets[0].label)
        cells = []
        for side in (theirs, ours):
            chosen = side.chosen.get(key)
            cells.append("(not yet)" if chosen is None else
                         f"{chosen.setting}, {chosen.choice or '-'}"
                         + ("" if chosen.value is None else f"; {chosen.value:.2f}"))
        lines.append(f"| {method} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Test metrics, mean ± sd over the seeds finished on each side; Welch's "
              f"two-sided t-test between the two, alpha {alpha}:", "",
              "| method | budget | metric | bench/table1.py | genae study run | difference | "
              "p | verdict | same seeds (4 decimals) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        fmt = metric_format(row.metric)
        diff = statistics.mean(row.ours.values()) - statistics.mean(row.theirs.values())
        same, both = row.same_seeds()
        p = "-" if row.p is None else f"{row.p:.2f}"
        lines.append(f"| {row.method} | {column_title(row.column)} | "
                     f"{metric_title(row.metric)} | {mean_sd(row.theirs, fmt)} | "
                     f"{mean_sd(row.ours, fmt)} | {diff:+{fmt}} | {p} | {row.verdict(alpha)} | "
                     f"{same}/{both} |")
    verdicts = [row.verdict(alpha) for row in rows]
    lines += ["", f"{verdicts.count('within seed noise')} within seed noise, "
              f"{verdicts.count('differs')} differ, {verdicts.count('n/a')} with too few seeds; "
              f"sources: {theirs.source} and {ours.source}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Parse the arguments, compare, print and return the markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="the study (a bundled name, or a file)")
    parser.add_argument("--root", required=True, help="the study's folder (its store)")
    parser.add_argument("--against", required=True, help="bench/table1.py's results.jsonl")
    parser.add_argument("--variant", default=None,
                        help="the results.jsonl budget (its config hash; default: the one "
                             "with the most test runs)")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="test metrics (default: the study's)")
    parser.add_argument("--alpha", type=float, default=ALPHA)
    args = parser.parse_args(argv)
    study = load_study(args.study)
    ours = sources.from_store(study, args.root)
    theirs = sources.from_table1_jsonl(study, args.against, args.variant)
    rows = compare(ours, theirs, args.metrics or list(study.metrics))
    if not rows:
        sys.exit(f"no method has finished test trials in both {args.root} and {args.against} "
                 "at a common budget: wait for the study's test trials (genae study status)")
    text = render(ours, theirs, rows, args.alpha)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()
