"""``genae study report <study>``: the table a paper prints, and its plots, from a study's results.

Per dataset, one row per config: its selected setting, and per budget column (each
``max_steps``, then each equal wall-clock budget) and test metric the mean ± sample sd over the
seeds. The best mean of a column is bold; a mark (†) says that a config differs from it
significantly: Welch's two-sided t-test over the seeds (unequal variances;
``scipy.stats.ttest_ind(equal_var=False)``) at p < ``--alpha``. The paper's values follow when
the study file names them. Written as markdown, CSV (one row per cell, full precision) and
LaTeX (booktabs), with two PNG plots (:mod:`~genae_lightning.studies.figures`): each metric
against the budget per config, and the selection grid's validation scores.

The results come from the study's store, or from ``bench/table1.py``'s ``results.jsonl``
(``--root`` naming the file): :mod:`~genae_lightning.studies.results`.
"""

import argparse
import csv
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from genae_lightning.commands.report import (
    _markdown,
    mean_sd,
)
from genae_lightning.metrics.fid import split_fid_key
from genae_lightning.studies.definition import Study
from genae_lightning.studies.results import (
    Column,
    Results,
    budget_name,
    from_store,
    from_table1_jsonl,
    metric_format,
    metric_title,
)
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.store import DEFAULT_ROOT

ALPHA = 0.05  # significance level of the mark
MARK = "†"
HIGHER_IS_BETTER = frozenset({"knn/acc"})  # every other metric: lower is better (FID, SSE)
TEST = ("Welch's two-sided t-test over seeds (unequal variances; scipy.stats.ttest_ind, "
        "equal_var=False)")


def higher_is_better(study: Study, key: str) -> bool:
    """Whether a larger value of the metric is better (the selection metric: its mode)."""
    return study.selection_mode == "max" if key == study.selection_metric else (
        key in HIGHER_IS_BETTER)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances) of two samples.

    None when either has fewer than 2 values, or the test is undefined (equal means and no
    spread on either side); 0 for different means without spread.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # identical values: scipy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


# ---------------------------------------------------------------------------------------------
# the table's numbers


@dataclass(frozen=True)
class Cell:
    """The results of one config in one column: values over seeds, and how they compare.

    Attributes:
        values: The finite values, one per seed.
        seeds: Their seeds.
        expected: The study's number of seeds.
        best: Whether its mean is the column's best.
        p: Welch's p-value against the column's best (None: not tested).
        significant: Whether ``p`` is below the significance level.
        reference: An equal-time column's reference config (its step budget's results).
    """

    values: tuple[float, ...]
    seeds: tuple[int, ...]
    expected: int
    best: bool = False
    p: float | None = None
    significant: bool = False
    reference: bool = False


@dataclass
class Table:
    """The numbers of one dataset's table.

    Attributes:
        dataset: The dataset's label.
        columns: The budget columns.
        seconds: The wall-clock budget of each equal-time column.
        cells: (config label, column, metric) -> cell.
        steps: (config label, equal-time column) -> the steps its runs trained.
    """

    dataset: str | None
    columns: list[Column]
    seconds: dict[Column, int | None]
    cells: dict[tuple[str, Column, str], Cell]
    steps: dict[tuple[str, Column], Cell]


def build_tables(results: Results, alpha: float = ALPHA) -> list[Table]:
    """One :class:`Table` per dataset of the study."""
    return [build_table(results, d.label, alpha) for d in results.study.datasets]


def build_table(results: Results, dataset: str | None, alpha: float = ALPHA) -> Table:
    """The cells of one dataset: values, the best of each column, Welch's p against it."""
    study = results.study
    references = study.equal_time.reference if study.equal_time else ()
    columns = results.columns(dataset)
    table = Table(dataset, columns, {}, {}, {})
    expected = len(study.seeds)
    for column in columns:
        for metric in study.metrics:
            raw = {}
            for method in study.methods:
                reference = column[0] == "time" and method.label in references
                runs = results.of(method.label, dataset, ("steps", column[1]) if reference
                                  else column)
                kept = [(r.seed, v) for r in runs if (v := r.value(metric)) is not None]
                raw[method.label] = (kept, reference)
            table.cells.update(compare(raw, higher_is_better(study, metric), expected, alpha,
                                       column, metric))
        if column[0] == "time":
            for method in study.methods:
                runs = [r for r in results.of(method.label, dataset, column) if r.steps]
                table.steps[method.label, column] = Cell(
                    tuple(float(r.steps) for r in runs), tuple(r.seed for r in runs), expected)
            table.seconds[column] = next((r.seconds for r in results.tests
                                          if (r.dataset, r.column) == (dataset, column)), None)
    return table


def compare(raw: dict[str, tuple[list[tuple[int, float]], bool]], higher: bool, expected: int,
            alpha: float, column: Column, metric: str) -> dict[tuple[str, Column, str], Cell]:
    """The cells of one column and metric: the best mean, and Welch's test of the others."""
    means = {label: mean_sd([v for _, v in kept])[0] for label, (kept, _) in raw.items()}
    ranked = [label for label in raw if means[label] is not None]
    best = (max if higher else min)(ranked, key=lambda label: means[label]) if ranked else None
    best_values = [v for _, v in raw[best][0]] if best else []
    cells = {}
    for label, (kept, reference) in raw.items():
        values = [v for _, v in kept]
        p = welch_p(values, best_values) if best and label != best else None
        cells[label, column, metric] = Cell(
            tuple(values), tuple(s for s, _ in kept), expected, label == best, p,
            p is not None and p < alpha, reference)
    return cells


# ---------------------------------------------------------------------------------------------
# markdown and LaTeX


@dataclass(frozen=True)
class Style:
    """How a table's text is written: markdown, or LaTeX."""

    pm: str
    bold: Callable[[str], str]
    mark: str
    math: Callable[[str], str]
    escape: Callable[[str], str]


def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped, and the report's symbols as math."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "±": r"$\pm$", MARK: r"$^{\dagger}$",
               "×": r"$\times$", "−": "-", "–": "--", "<": "$<$", ">": "$>$"}
    return "".join(special.get(c, c) for c in text)


MARKDOWN = Style(" ± ", lambda t: f"**{t}**", f" {MARK}", str, str)
LATEX = Style(r" \pm ", lambda t: rf"\mathbf{{{t}}}", r"^{\dagger}", lambda t: f"${t}$",
              latex_escape)


def cell_text(cell: Cell | None, fmt: str, style: Style) -> str:
    """``mean ± sd`` of a cell: bold when best, marked when significantly worse."""
    if cell is None or not cell.values:
        return style.escape("–" if cell is None or not cell.reference else "– (ref.)")
    mean, sd = mean_sd(list(cell.values))
    text = format(mean, fmt) + ("" if sd is None else style.pm + format(sd, fmt))
    text = style.bold(text) if cell.best else text
    text = style.math(text + (style.mark if cell.significant else ""))
    if len(cell.values) < cell.expected:
        text += f" (n={len(cell.values)})"
    return text + (" (ref.)" if cell.reference else "")


def budget_title(column: Column, seconds: int | None) -> str:
    """A budget column's title: ``5000 steps`` or ``equal time (837 s)``."""
    if column[0] == "steps":
        return f"{column[1]} steps"
    return f"equal time ({seconds} s)" if seconds is not None else "equal time"


def paper_keys(study: Study) -> list[str]:
    """The metrics the study's paper values name, in the order of the study's metrics.

    A paper's FID of another feature (``fid/gmm`` beside our ``cfid/gmm``) takes the place of
    the study's FID of the same kind.
    """
    kinds = [fid[1] if (fid := split_fid_key(m)) else m for m in study.metrics]

    def place(key: str) -> tuple[int, str]:
        fid = split_fid_key(key)
        kind = fid[1] if fid else key
        return (kinds.index(kind) if kind in kinds else len(kinds), key)

    return sorted({key for values in study.paper.values() for key in values}, key=place)


def header(results: Results, table: Table) -> list[str]:
    """The table's column titles (plain text)."""
    titles = ["Method", "Setting"]
    for column in table.columns:
        budget = budget_title(column, table.seconds.get(column))
        titles += [f"{metric_title(m)}, {budget}" for m in results.study.metrics]
        if column[0] == "time":
            titles.append(f"steps, {budget}")
    return titles + [f"paper {metric_title(k)}" for k in paper_keys(results.study)]


def rows(results: Results, table: Table, style: Style) -> list[list[str]]:
    """The table's rows, one per config, in ``style``."""
    study = results.study
    out = []
    for method in study.methods:
        chosen = results.chosen.get((method.label, table.dataset))
        setting = ("(not selected yet)" if chosen is None else
                   ", ".join(t for t in (chosen.setting, chosen.choice) if t))
        row = [style.escape(method.label), style.escape(setting)]
        for column in table.columns:
            row += [cell_text(table.cells.get((method.label, column, m)), metric_format(m), style)
                    for m in study.metrics]
            if column[0] == "time":
                steps = table.steps.get((method.label, column))
                row.append(cell_text(steps if steps and steps.values else None, ".0f", style))
        paper = study.paper.get(method.label, {})
        row += [format(paper[k], metric_format(k)) if k in paper else style.escape("–")
                for k in paper_keys(study)]
        out.append(row)
    return out


def footnote(results: Results, alpha: float) -> str:
    """What the table's marks and columns mean (plain text; LaTeX escapes it)."""
    study = results.study
    higher = [metric_title(k) for k in study.metrics if higher_is_better(study, k)]
    lines = [
        f"Test split; mean ± sample sd (n − 1) over the seeds {list(study.seeds)}; (n=k): only "
        "k seeds finished.",
        "Bold: the best mean of its column (lowest" + (f"; highest for {', '.join(higher)}"
                                                          if higher else "") + f"). {MARK}: "
        f"differs from it at p < {alpha:g} by {TEST}; no mark where either has fewer than 2 "
        "seeds.",
        f"Setting: selected on the validation {metric_title(study.selection_metric)} "
        f"({study.selection_mode}) of seed {study.selection_seed}.",
    ]
    if study.equal_time is not None:
        equal = study.equal_time
        lines.append(f"Equal time: every config but {', '.join(equal.reference)} trained for "
                     "the largest of their median training times at the steps named (at most "
                     f"{equal.max_steps_factor} × those steps); (ref.): the references' own "
                     "results at those steps.")
    if study.paper:
        lines.append("paper: the values the study file names, from the paper's own protocol.")
    return " ".join(lines)


def status(results: Results) -> str:
    """One line: where the results come from and how many test trials are done."""
    counts = ", ".join(f"{n} {state}" for state, n in sorted(results.counts.items()))
    return f"Results of {results.source}; test trials: {counts}."


def markdown_report(results: Results, tables: list[Table], alpha: float = ALPHA) -> str:
    """The report as markdown: the table per dataset, its footnote, the selection grid."""
    study = results.study
    parts = [f"# Study {study.name}" + (f": {study.description}" if study.description else ""),
             status(results)]
    for table in tables:
        if table.dataset:
            parts.append(f"## {table.dataset}")
        parts.append(_markdown(header(results, table), rows(results, table, MARKDOWN)).rstrip())
    parts.append(footnote(results, alpha))
    parts += results.notes
    if results.grid:
        parts.append(f"## Selection grid (validation {metric_title(study.selection_metric)}, "
                     f"seed {study.selection_seed})")
        datasets = len(study.datasets) > 1
        parts.append(_markdown(
            ["Method", *(["Dataset"] if datasets else []), "Grid point", "Choice",
             f"validation {metric_title(study.selection_metric)}", "Selected"],
            [[g.method, *([g.dataset] if datasets else []), g.setting, g.choice or "–",
              "failed" if g.value is None else format(g.value, metric_format(
                  study.selection_metric)), "yes" if g.selected else ""]
             for g in results.grid]).rstrip())
    return "\n\n".join(parts) + "\n"


def latex_report(results: Results, tables: list[Table], alpha: float = ALPHA) -> str:
    """The report as LaTeX tables (they need the booktabs package), one per dataset."""
    study = results.study
    out = [f"% genae study report {study.name}: {status(results)}",
           "% needs \\usepackage{booktabs}"]
    for table in tables:
        titles = header(results, table)
        where = f" on {table.dataset}" if table.dataset else ""
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{latex_escape(f'Study {study.name}{where}')}}}",
                rf"\begin{{tabular}}{{ll{'r' * (len(titles) - 2)}}}", r"\toprule",
                " & ".join(latex_escape(t) for t in titles) + r" \\", r"\midrule",
                *(" & ".join(row) + r" \\" for row in rows(results, table, LATEX)),
                r"\bottomrule", r"\end{tabular}", "",
                rf"\par\smallskip\footnotesize {latex_escape(footnote(results, alpha))}",
                r"\end{table}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# CSV

CSV_FIELDS = ("dataset", "method", "setting", "budget", "budget_kind", "budget_steps",
              "budget_seconds", "metric", "n", "seeds", "mean", "sd", "best", "p_value",
              "significant", "reference")


def csv_report(results: Results, tables: list[Table]) -> str:
    """One row per cell (full precision), equal-time steps and paper values included.

    ``budget`` is ``steps=<n>``, ``time=<s>s``, or ``paper`` (the study file's values); ``n``
    and ``seeds`` are the seeds with a finite value; ``p_value`` is Welch's against the best
    (empty: not tested).
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS)
    writer.writeheader()
    for table in tables:
        for method in results.study.methods:
            chosen = results.chosen.get((method.label, table.dataset))
            base = {"dataset": table.dataset, "method": method.label,
                    "setting": "" if chosen is None else
                    ", ".join(t for t in (chosen.setting, chosen.choice) if t)}
            for column in table.columns:
                seconds = table.seconds.get(column)
                budget = {"budget": budget_name(column, seconds), "budget_kind": column[0],
                          "budget_steps": column[1], "budget_seconds": seconds}
                cells = [(m, table.cells.get((method.label, column, m)))
                         for m in results.study.metrics]
                if column[0] == "time":
                    cells.append(("steps", table.steps.get((method.label, column))))
                for metric, cell in cells:
                    if cell is not None:
                        writer.writerow({**base, **budget, **cell_fields(cell), "metric": metric})
            for key, value in results.study.paper.get(method.label, {}).items():
                writer.writerow({**base, "budget": "paper", "budget_kind": "paper",
                                 "metric": key, "mean": value})
    return out.getvalue()


def cell_fields(cell: Cell) -> dict[str, object]:
    """A cell's CSV fields (empty ones for what it lacks)."""
    mean, sd = mean_sd(list(cell.values))
    return {"n": len(cell.values), "seeds": " ".join(map(str, cell.seeds)), "mean": mean,
            "sd": sd, "best": cell.best, "p_value": cell.p, "significant": cell.significant,
            "reference": cell.reference}


# ---------------------------------------------------------------------------------------------
# the command


def write_report(results: Results, out: Path, alpha: float = ALPHA) -> dict[str, Path]:
    """Write ``<out>.md``, ``.csv``, ``.tex``, ``_budget.png`` and ``_selection.png``.

    Returns:
        The files written, by kind (no ``selection`` plot for a study without a grid).
    """
    from genae_lightning.studies.figures import budget_figure, selection_figure

    tables = build_tables(results, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out.with_name(f"{out.name}.md"), "csv": out.with_name(f"{out.name}.csv"),
             "latex": out.with_name(f"{out.name}.tex")}
    files["markdown"].write_text(markdown_report(results, tables, alpha), encoding="utf-8")
    files["csv"].write_text(csv_report(results, tables), encoding="utf-8")
    files["latex"].write_text(latex_report(results, tables, alpha), encoding="utf-8")
    files["budget"] = budget_figure(results, out.with_name(f"{out.name}_budget.png"))
    selection = selection_figure(results, out.with_name(f"{out.name}_selection.png"))
    if selection is not None:
        files["selection"] = selection
    return files


def report_command(argv: list[str]) -> dict[str, Path]:
    """``genae study report``: the paper's table (markdown, CSV, LaTeX) and plots of a study."""
    parser = argparse.ArgumentParser(prog="genae study report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="a bundled study's name (`genae study list`) or a file")
    parser.add_argument("--root", default=None,
                        help=f"the study's folder (default: {DEFAULT_ROOT}/<study name>), or "
                             "bench/table1.py's results.jsonl")
    parser.add_argument("--out", default=None,
                        help="output prefix: PREFIX.md, .csv, .tex, _budget.png, _selection.png "
                             "(default: <root>/report; for a results.jsonl: "
                             f"{DEFAULT_ROOT}/<study name>/table1_jsonl_report)")
    parser.add_argument("--variant", default=None,
                        help="a results.jsonl's budget (its `config` hash; default: the one "
                             "with the most test runs)")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help=f"significance level of the mark (default {ALPHA})")
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must lie between 0 and 1, got {args.alpha}")
    study = load_study(args.study, check_classes=False)  # read only: nothing is trained
    root = Path(args.root or Path(DEFAULT_ROOT) / study.name)
    if root.suffix == ".jsonl":
        results = from_table1_jsonl(study, root, args.variant)
        default_out = Path(DEFAULT_ROOT) / study.name / "table1_jsonl_report"
    else:
        if args.variant is not None:
            parser.error("--variant chooses a budget of a results.jsonl; --root is a store")
        results, default_out = from_store(study, root), root / "report"
    files = write_report(results.check(), Path(args.out or default_out), args.alpha)
    print(files["markdown"].read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return files
