"""bench/reproduction.py: a study's results against the standalone bench/table1.py's."""

import sys
from pathlib import Path

import pytest

from genae_lightning.studies.results import Result, Results
from genae_lightning.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import reproduction  # noqa: E402

GMM = "cfid/gmm"


def results(study, values: dict[int, float], method: str = "ae") -> Results:
    """Results with one method's test GMM FID at the study's first step budget, by seed."""
    column = ("steps", study.max_steps[0])
    dataset = study.datasets[0].label
    return Results(study, "made here", [Result(method, dataset, column, seed, {GMM: value})
                                        for seed, value in values.items()])


def test_the_committed_fashion_study_against_the_script(capsys) -> None:
    """The committed budget_fashion store against the script's runs of the same week."""
    text = reproduction.main([
        "budget_fashion", "--root", str(ROOT / "bench/results/studies/budget_fashion"),
        "--against", str(ROOT / "bench/results/budget/fashion_1000/results.jsonl")])
    assert text == capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| ") + "/" + line.split(" | ")[2]: line
            for line in text.splitlines() if "| steps=1000 |" in line}
    assert set(rows) == {f"{m}/{t}" for m in ("ae", "injflow")
                         for t in ("Rec. cFID", "N cFID", "GMM cFID")}
    # the weights are the same: reconstruction FID equal on every seed
    assert rows["ae/Rec. cFID"].endswith("| within seed noise | 3/3 |")
    # the GMM's initialisation differs on seeds 1 and 2 (FitLatentPrior's seed 0 in the study)
    assert rows["ae/GMM cFID"].endswith("| within seed noise | 1/3 |")
    assert "| 19.87 ± 0.81 (n=3) | 20.23 ± 0.87 (n=3) | +0.37 |" in rows["ae/GMM cFID"]
    assert "6 within seed noise, 0 differ, 0 with too few seeds" in text


def test_a_shift_beyond_the_seed_spread_differs_and_one_seed_is_not_tested() -> None:
    study = load_study("budget_fashion")
    script = results(study, {0: 20.0, 1: 20.5, 2: 19.5})
    rows = reproduction.compare(results(study, {0: 30.0, 1: 30.5, 2: 29.5}), script, [GMM])
    assert [r.verdict(0.05) for r in rows] == ["differs"] and rows[0].p < 0.001
    assert rows[0].same_seeds() == (0, 3)
    same = reproduction.compare(results(study, {0: 20.0, 1: 20.5, 2: 19.5}), script, [GMM])
    assert same[0].verdict(0.05) == "within seed noise" and same[0].same_seeds() == (3, 3)
    one = reproduction.compare(results(study, {0: 20.0}), script, [GMM])
    assert one[0].verdict(0.05) == "n/a"
    text = reproduction.render(results(study, {0: 20.0}), script, one)
    assert "| ae | steps=1000 | GMM cFID | 20.00 ± 0.50 (n=3) | 20.00 (n=1) | +0.00 | - | n/a |" \
        in text


def test_no_common_finished_trial_is_said(tmp_path) -> None:
    (tmp_path / "trials").mkdir()  # a store with no trial finished yet
    with pytest.raises(SystemExit, match="no method has finished test trials in both"):
        reproduction.main([
            "table1_mnist", "--root", str(tmp_path),
            "--against", str(ROOT / "bench/results/table1/mnist/results.jsonl")])
