"""bench/budget_curve.py: several studies' step budgets joined per method."""

import math
import sys
from pathlib import Path

import pytest
from PIL import Image

from genae_lightning.studies.results import Result, Results
from genae_lightning.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import budget_curve  # noqa: E402

GMM = "cfid/gmm"


def results(name: str, values: dict[str, dict[int, float]]) -> tuple[str, Results]:
    """A study's results at its first step budget: method -> seed -> test GMM FID."""
    study = load_study(name)
    column, dataset = ("steps", study.max_steps[0]), study.datasets[0].label
    return name, Results(study, f"{name} made here", [
        Result(method, dataset, column, seed, {GMM: value})
        for method, seeds in values.items() for seed, value in seeds.items()])


def test_the_committed_fashion_studies_joined(tmp_path, capsys) -> None:
    """budget_fashion's store (1000, 5000 steps) and the 2000-step script runs, one curve."""
    figure = tmp_path / "fashion.png"
    text = budget_curve.main([
        "--methods", "ae", "injflow", "--baseline", "ae", "--figure", str(figure),
        "--source", f"budget_fashion={ROOT / 'bench/results/studies/budget_fashion'}",
        "--source", f"table1_fashion={ROOT / 'bench/results/table1/fashion_mnist/results.jsonl'}"])
    assert text in capsys.readouterr().out
    assert "| method | 1000 steps | 2000 steps | 5000 steps |" in text
    assert ("| ae | 20.23 ± 0.87 (3; [1]) | 15.53 ± 0.19 (3; [2]) | 14.52 ± 1.14 (3; [1]) |"
            in text)
    assert "| injflow - ae | -1.64 (p 0.38) | +1.51 (p <0.01) | +0.29 (p 0.74) |" in text
    assert "[2] table1_fashion: " in text
    assert Image.open(figure).size == (900, 320)


def test_differences_their_error_and_the_source_with_most_seeds_wins() -> None:
    first = results("budget_fashion", {"ae": {0: 20.0, 1: 22.0}, "injflow": {0: 17.0, 1: 17.0}})
    tie = results("budget_fashion", {"ae": {0: 99.0, 1: 99.0}})
    cells = budget_curve.join([first, tie], ["ae", "injflow"], GMM)
    ae, injflow = cells["ae"][1000], cells["injflow"][1000]
    assert (ae.values, ae.source) == ({0: 20.0, 1: 22.0}, 1)  # a tie: the first
    more = results("budget_fashion", {"ae": {0: 99.0, 1: 99.0, 2: 99.0}})
    assert budget_curve.join([first, more], ["ae"], GMM)["ae"][1000].source == 2
    diff, se, p = budget_curve.difference(injflow, ae)
    assert diff == pytest.approx(-4.0)
    assert se == pytest.approx(math.sqrt(2.0 / 2))  # sd(20, 22)^2 / 2 + 0
    assert p is not None and 0 < p < 0.5
    one = results("budget_fashion", {"ae": {0: 20.0}, "injflow": {0: 19.0}})
    cells = budget_curve.join([one], ["ae", "injflow"], GMM)
    assert budget_curve.difference(cells["injflow"][1000], cells["ae"][1000]) == (-1.0, 0.0, None)
    text = budget_curve.render(cells, GMM, "ae", [one])
    assert "| injflow - ae | -1.00 (p -) |" in text


def test_bad_sources_and_labels_say_what_was_expected(tmp_path) -> None:
    with pytest.raises(SystemExit, match="expected STUDY=PATH"):
        budget_curve.main(["--methods", "ae", "--source", "budget_fashion"])
    with pytest.raises(SystemExit, match="no study store at"):
        budget_curve.main(["--methods", "ae", "--source", f"budget_fashion={tmp_path}"])
    store = f"budget_fashion={ROOT / 'bench/results/studies/budget_fashion'}"
    with pytest.raises(SystemExit, match="no finished test trial of vae with cfid/gmm"):
        budget_curve.main(["--methods", "ae", "vae", "--source", store])
