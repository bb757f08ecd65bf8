"""``genae study report``: the table's numbers, Welch's test, the three formats and the plots.

The store is built by hand (no training): every trial of a small study gets a record with
chosen metrics, as the driver would leave it, so the table's numbers are known in advance.
"""

import csv
import io
import math
from pathlib import Path

import pytest
from PIL import Image

from genae_lightning.cli import main
from genae_lightning.studies.plan import (
    equal_time_seconds,
    select,
    selection_trials,
    test_trials,
    time_trials,
    variant,
)
from genae_lightning.studies.report import build_tables, report_command, welch_p
from genae_lightning.studies.results import from_store, from_table1_jsonl
from genae_lightning.studies.run import study_record, write_selection
from genae_lightning.studies.spec import load_study
from genae_lightning.studies.store import Store, write_json
from tests.conftest import REPO

STUDY = """\
# compared: a hand-made study for the report's tests
name: compared
description: AE (a 2-point grid), VAE and InjFlow, 3 seeds, 10 and 20 steps, equal time
configs:
  ae: ae_mnist
  vae: vae_mnist
  injflow: injflow_mnist
datasets:
  synthetic: {data: genae_lightning.data.SyntheticImages}
seeds: [0, 1, 2]
selection:
  seed: 0
  metric: cfid/gmm
  grid:
    ae: {model.init_args.latent_dim: [4, 8]}
budgets:
  max_steps: [10, 20]
  equal_time: {reference: [injflow], steps: [10], max_steps_factor: 20}
metrics: [cfid/gmm, knn/acc]
evaluation: {num_samples: 32, feature: null}
paper: {ae: {fid/gmm: 12.14}, injflow: {fid/gmm: 11.43}}
wandb: {project: genae-test, entity: someone}
"""
# test values by (config, steps or "time"): cfid/gmm over seeds 0 1 2 (knn/acc: 0.9 - gmm / 100)
GMM = {("ae", 10): [10.0, 11.0, 12.0], ("vae", 10): [20.0, 22.0, 21.0],
       ("injflow", 10): [8.0, 8.5, 9.5], ("ae", 20): [9.0, 9.5, 10.0],
       ("vae", 20): [18.0, 18.5, 19.5], ("injflow", 20): [7.0, 7.5, 8.0],
       ("ae", "time"): [9.5, 10.0, 10.5], ("vae", "time"): [19.0, 20.0, 21.0]}
STEPS_AT_EQUAL_TIME = [40, 42, 44]
GRID = [3.0, 2.0]  # validation cfid/gmm of latent_dim 4, 8: 8 is selected


def done(trial, metrics, **extra) -> dict:
    """A done record of ``trial`` with one evaluation choice's metrics."""
    choice = trial.evaluation.recalibrate_batchnorm[0]
    return {"id": trial.id, "trial": trial.to_json(), "state": "done", "attempts": 1,
            "failures": 0, "errors": [], "error": None,
            "metrics": {variant(choice): metrics}, "steps": trial.budget.max_steps,
            "train_seconds": 5.0, "wandb_id": f"w-{trial.id[-6:]}", **extra}


def scores(gmm: float) -> dict:
    """Test metrics of a run with this GMM cFID."""
    return {"cfid/gmm": gmm, "knn/acc": 0.9 - gmm / 100}


def build_store(root: Path, tmp: Path, pending: int = 0) -> Path:
    """A study file and its store with every trial done (but the last ``pending`` tests)."""
    path = tmp / "compared.yaml"
    path.write_text(STUDY)
    study = load_study(path, check_classes=False)
    store = Store(root)
    store.init(study_record(study))
    grid = selection_trials(study)
    records = {t.id: done(t, {"cfid/gmm": v}) for t, v in zip(grid, GRID, strict=True)}
    selections = select(study, grid, records, list(records))
    write_selection(store, selections, study)
    tests = test_trials(study, selections)
    for t in tests:
        records[t.id] = done(t, scores(GMM[t.method, t.budget.max_steps][t.seed]))
    for t in time_trials(study, selections, equal_time_seconds(study, tests, records)):
        records[t.id] = done(t, scores(GMM[t.method, "time"][t.seed]),
                             steps=STEPS_AT_EQUAL_TIME[t.seed])
    for record in list(records.values())[len(records) - pending:] if pending else ():
        record.update(state="pending", metrics=None)
    for record in records.values():
        write_json(store.record_path(record["id"]), record)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The study file, and the report's files from its store."""
    tmp = tmp_path_factory.mktemp("report")
    path = build_store(tmp / "store", tmp)
    files = report_command([str(path), "--root", str(tmp / "store"), "--out",
                            str(tmp / "out" / "table")])
    return path, files


def by_hand(a: list[float], b: list[float]) -> float:
    """Welch's two-sided p-value from its formula (t and Welch-Satterthwaite df)."""
    from scipy.stats import t as student

    va, vb = (sum((x - sum(s) / len(s)) ** 2 for x in s) / (len(s) - 1) / len(s) for s in (a, b))
    stat = (sum(a) / len(a) - sum(b) / len(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * student.sf(abs(stat), df)


def test_welch_p_matches_its_formula_and_needs_two_values_with_spread() -> None:
    a, b = GMM["ae", 10], GMM["injflow", 10]
    assert welch_p(a, b) == pytest.approx(by_hand(a, b), rel=1e-9)
    assert welch_p(a, b) == pytest.approx(0.03579, abs=1e-5)  # t = 3.212, df = 3.74
    assert welch_p([1.0], b) is None and welch_p([2.0, 2.0], [2.0, 2.0]) is None  # undefined
    assert welch_p([2.0, 2.0], [1.0, 1.0]) == 0.0  # no spread, different means


def test_the_table_has_mean_sd_best_marks_setting_equal_time_and_paper(report) -> None:
    _, files = report
    text = files["markdown"].read_text()
    table = text.split("## Selection grid")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()
            if line.startswith("| ") and " | " in line}
    # ae: the selected grid point; 10 steps: 11.00 ± 1.00, significantly worse than InjFlow's
    assert rows["ae"].startswith("| ae | latent_dim=8 | 11.00 ± 1.00 † |")
    assert "**8.67 ± 0.76**" in rows["injflow"] and "†" not in rows["injflow"].split("|")[3]
    assert "21.00 ± 1.00 †" in rows["vae"]
    # knn/acc: higher is better, so InjFlow's is bold there too
    assert "**0.8133 ± 0.0076**" in rows["injflow"]
    # equal time: the column of the references' 10 steps (5 s each), their values marked ref.
    assert "equal time (5 s)" in rows["Method"]
    assert by_hand(GMM["ae", "time"], GMM["injflow", 10]) > 0.05  # no mark
    assert "| 10.00 ± 0.50 | 0.8000 ± 0.0050 | 42 ± 2 |" in rows["ae"]
    assert "**8.67 ± 0.76** (ref.)" in rows["injflow"]
    assert rows["ae"].endswith("| 12.14 |") and rows["vae"].endswith("| – |")  # paper
    assert "Welch's two-sided t-test" in text and "test trials: 24 done." in text
    assert "| ae | latent_dim=8 | – | 2.00 | yes |" in text  # the selection grid


def test_the_csv_holds_every_cell_at_full_precision(report) -> None:
    _, files = report
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    cell = {(r["method"], r["budget"], r["metric"]): r for r in rows}
    ae = cell["ae", "steps=10", "cfid/gmm"]
    assert (float(ae["mean"]), float(ae["sd"]), ae["n"], ae["seeds"]) == (11.0, 1.0, "3", "0 1 2")
    p = by_hand(GMM["ae", 10], GMM["injflow", 10])
    assert float(ae["p_value"]) == pytest.approx(p) and ae["significant"] == "True"
    assert cell["injflow", "steps=10", "cfid/gmm"]["best"] == "True"
    assert cell["injflow", "steps=10", "cfid/gmm"]["p_value"] == ""
    timed = cell["ae", "time=5s", "cfid/gmm"]
    assert (float(timed["mean"]), timed["budget_steps"], timed["budget_kind"]) == (
        10.0, "10", "time")
    assert float(cell["ae", "time=5s", "steps"]["mean"]) == 42.0
    assert cell["injflow", "time=5s", "cfid/gmm"]["reference"] == "True"
    assert float(cell["ae", "paper", "fid/gmm"]["mean"]) == 12.14
    assert {r["setting"] for r in rows if r["method"] == "ae"} == {"latent_dim=8"}


def test_the_latex_table_is_booktabs_with_the_numbers(report) -> None:
    _, files = report
    tex = files["latex"].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{ll"):
        assert rule in tex
    assert r"$11.00 \pm 1.00^{\dagger}$" in tex and r"$\mathbf{8.67 \pm 0.76}$ (ref.)" in tex
    assert r"latent\_dim=8" in tex and "Welch" in tex and r"p $<$ 0.05" in tex
    assert not set("–±†×<") & set(tex.replace("$<$", ""))  # as LaTeX commands, not Unicode
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert all(line.count("&") == tex.split(r"\toprule")[1].split("\n")[1].count("&")
               for line in body.strip().splitlines())


def test_the_plots_are_pngs_of_their_size(report) -> None:
    _, files = report
    for kind, size in (("budget", (400 * 2, 300)), ("selection", (800, 100 + 25 * 2))):
        with Image.open(files[kind]) as image:
            image.verify()
        with Image.open(files[kind]) as image:
            assert (image.format, image.size) == ("PNG", size)


def test_unfinished_trials_are_counted_and_an_empty_store_is_named(tmp_path, capsys) -> None:
    path = build_store(tmp_path / "store", tmp_path, pending=2)  # the last two (vae at time)
    main(["study", "report", str(path), "--root", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert "22 done, 2 pending" in out
    # vae at equal time: seed 0 only, so no test against the best (Welch needs 2 seeds)
    assert "| 19.00 (n=1) | 0.7100 (n=1) | 40 (n=1) |" in out
    assert (tmp_path / "store" / "report.md").is_file()
    study = load_study(path, check_classes=False)
    with pytest.raises(FileNotFoundError, match="no study store at .*genae study run"):
        from_store(study, tmp_path / "elsewhere")
    empty = tmp_path / "empty"
    Store(empty)
    with pytest.raises(ValueError, match="no finished test trial .*genae study run"):
        from_store(study, empty).check()


def test_bench_table1_results_stay_readable(tmp_path) -> None:
    results = REPO / "bench" / "results" / "table1" / "mnist" / "results.jsonl"
    files = report_command(["table1_mnist", "--root", str(results), "--out",
                            str(tmp_path / "t1")])
    text = files["markdown"].read_text()
    row = next(line for line in text.splitlines() if line.startswith("| injflow |"))
    # bench/table1.py's own table: InjFlow GMM 13.16 ± 0.80, equal time 837 s
    assert "**13.16 ± 0.80**" in row and "equal time (837 s)" in text
    assert "| beta_vae | sigma=0.1, recalibrate_batchnorm=100 | 1.46 ± 0.19 |" in text
    assert "also holds the budgets" in text
    # another budget of the file: InjFlow's cheaper estimator, tested at 2000 steps only
    cheaper = from_table1_jsonl(load_study("table1_mnist", check_classes=False), results,
                                "d78d27b450c8")
    [table] = build_tables(cheaper)
    assert table.columns == [("steps", 2000)]
    assert {r.method for r in cheaper.tests} == {"injflow", "injflow_ln"}
    with pytest.raises(ValueError, match="no runs of the budget 'nope'; expected one of"):
        from_table1_jsonl(cheaper.study, results, "nope")


def test_trials_run_with_other_code_torch_or_threads_are_said(tmp_path) -> None:
    """The same settings give the same numbers only with the same code, torch and threads."""
    path = build_store(tmp_path / "store", tmp_path)
    study = load_study(path, check_classes=False)
    assert not [n for n in from_store(study, tmp_path / "store").notes if "different" in n]
    store = Store(tmp_path / "store")
    env = {"git": "a" * 40, "torch": "2.14.1", "threads": 1}
    for n, record in enumerate(store.records().values()):
        record["environments"] = [{"attempt": 1, **env}]
        if n == 0:  # one trial resumed on another machine: 2 threads, a later commit
            record["environments"].append({"attempt": 2, **env, "threads": 2, "git": "b" * 40})
        write_json(store.record_path(record["id"]), record)
    notes = [n for n in from_store(study, tmp_path / "store").notes if "different" in n]
    assert notes == [
        f"the trials ran with different code (git commit) (aaaaaaaaaa: {n}, bbbbbbbbbb: 1 "
        f"trials); threads (1: {n}, 2: 1 trials): the same settings give the same numbers only "
        "with the same code, torch and threads (each record's `environments`)"
        for n in [len(store.records())]]
    table = (report_command([str(path), "--root", str(tmp_path / "store"), "--out",
                             str(tmp_path / "out" / "t")])["markdown"]).read_text()
    assert notes[0] in table
