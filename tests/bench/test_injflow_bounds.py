"""bench/injflow_bounds.py end to end on a tiny budget: every run, the matched control, resume."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "digits", "--steps", "4", "--seeds", "0", "--matched", "--eval-samples", "64",
        "--eval-train", "200", "--feature-epochs", "1", "--diag-examples", "8", "--probes", "2",
        "--threads", "1"]


def run_study(out: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "injflow_bounds.py"), *TINY,
                           "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # runs bench/injflow_bounds.py twice: pytest -m slow
def test_study_runs_every_configuration_and_resumes(tmp_path: Path) -> None:
    stdout = run_study(tmp_path, "--figures", str(tmp_path / "figures"))
    results = json.loads((tmp_path / "digits" / "results.json").read_text())["results"]
    runs = {(r["bound"], r["schedule"]): r for r in results}
    assert set(runs) == {(b, s) for b in ("log", "linear") for s in ("penalty", "AL", "matched")}
    for bound in ("log", "linear"):
        al, matched = runs[bound, "AL"], runs[bound, "matched"]
        assert al["lambda"] > 0 and al["mu"] == pytest.approx(1.0)  # AL: mu fixed, lambda grows
        assert matched["mu"] == pytest.approx(1 + al["lambda"], rel=1e-4)  # ends at AL's weight
        assert runs[bound, "penalty"]["mu"] == pytest.approx(1 + 3 / 1000)  # the paper's schedule
        final = al["history"][-1]
        assert final["step"] == 4 and final["diag/gap_log"] >= 0 and final["diag/gap_linear"] >= 0
    for name in ("| log, penalty | 4 |", "| linear, matched |", "FID GMM"):
        assert name in stdout
    assert len(list((tmp_path / "figures").glob("injflow_spectrum_digits_*_seed0.png"))) == 6
    again = run_study(tmp_path, "--resume")  # every run is kept: nothing is trained again
    assert "train, final" not in again
    assert json.loads((tmp_path / "digits" / "results.json").read_text())["results"] == results
