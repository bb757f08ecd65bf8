"""bench/table1.py: its options as a study (the bundled table1_* by default), run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genae_lightning.studies.plan import selection_trials
from genae_lightning.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import table1  # noqa: E402


def written_study(tmp_path: Path, *argv: str):
    """The study bench/table1.py writes for ``argv`` (with --dry-run: nothing runs)."""
    table1.main([*argv, "--root", str(tmp_path), "--dry-run"])
    return load_study(tmp_path / "table1.yaml")


def trial_ids(study) -> list[str]:
    return sorted(t.id for t in selection_trials(study))


@pytest.mark.parametrize("dataset, bundled", [("mnist", "table1_mnist"),
                                              ("fashion_mnist", "table1_fashion")])
def test_the_default_options_are_the_bundled_study(tmp_path, capsys, dataset, bundled) -> None:
    study = written_study(tmp_path, "--dataset", dataset)
    reference = load_study(bundled)
    assert trial_ids(study) == trial_ids(reference)  # the same fits, to the hash of their args
    assert study.seeds == reference.seeds and study.max_steps == reference.max_steps
    assert study.equal_time == reference.equal_time
    assert study.evaluation == reference.evaluation and study.name == f"{bundled}_2000"
    assert "19 selection" in capsys.readouterr().out


def test_a_budget_point_is_the_budget_study_s(tmp_path) -> None:
    """The 1000-step Fashion-MNIST budget as the script took it is budget_fashion's trials."""
    study = written_study(tmp_path, "--dataset", "fashion_mnist", "--steps", "1000", "--grid",
                          "ae", "injflow/w=0.001/nu=1/schedule=compressed")
    assert trial_ids(study) == trial_ids(load_study("budget_fashion"))
    assert [m.label for m in study.methods] == ["ae", "injflow"]
    assert tuple(study.equal_time.reference) == ("injflow",)
    assert tuple(study.equal_time.steps) == (1000,)


def test_grid_points_methods_and_estimator_options(tmp_path) -> None:
    study = written_study(tmp_path, "--grid", "cpu", "--methods", "ae_l2", "injflow",
                          "--steps", "300", "--jac-fraction", "0.25", "--jvp",
                          "finite_difference", "--seeds", "0", "1", "--eval-samples", "64",
                          "--recalibrate", "0", "--no-equal-time", "--no-wandb")
    spec = yaml.safe_load((tmp_path / "table1.yaml").read_text())
    assert list(spec["configs"]) == ["ae_l2", "injflow"]
    assert spec["configs"]["injflow"]["overrides"] == {
        "model.init_args.jac_fraction": 0.25, "model.init_args.jvp": "finite_difference"}
    assert spec["configs"]["ae_l2"]["overrides"] == {}  # the estimator is InjFlow's only
    grid = spec["selection"]["grid"]
    assert grid["ae_l2"] == [{"model.init_args.l2_weight": 0.01},
                             {"model.init_args.l2_weight": 0.1}]
    assert {p["model.init_args.constraint"]["class_path"] for p in grid["injflow"]} == {
        "genae_lightning.methods.Penalty", "genae_lightning.methods.AugmentedLagrangian"}
    assert [p["model.init_args.constraint"].get("init_args", {}).get("reference_steps")
            for p in grid["injflow"]] == [None, 100000, None, 100000, None]
    assert len(selection_trials(study)) == 7 and study.seeds == (0, 1)
    assert study.max_steps == (300,) and study.equal_time is None and study.wandb is None
    assert study.evaluation.num_samples == 64 and study.evaluation.recalibrate_batchnorm == (0,)
    assert study.name == "table1_mnist_300_jac0p25_finite_difference"
    assert "paper" not in spec or set(spec["paper"]) <= {"ae_l2", "injflow"}


def test_one_point_of_a_method_is_its_setting_not_a_grid(tmp_path) -> None:
    written_study(tmp_path, "--grid", "ae_l2/l2=0.5", "vae")
    spec = yaml.safe_load((tmp_path / "table1.yaml").read_text())
    assert spec["selection"]["grid"] == {}
    assert spec["configs"]["ae_l2"]["overrides"] == {"model.init_args.l2_weight": 0.5}
    assert "equal_time" not in spec["budgets"]  # no InjFlow: no reference time


def test_unknown_points_missing_features_and_the_grid_listing(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit, match=r"unknown grid point or preset 'ae/x=1'.*--list-grid"):
        table1.main(["--grid", "ae/x=1", "--root", str(tmp_path)])
    with pytest.raises(SystemExit, match="no grid point of --grid ae_l2/l2=0.5 belongs to"):
        table1.main(["--grid", "ae_l2/l2=0.5", "--methods", "vae", "--root", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--feature .*gone\.pt: no such file.*train-features"):
        table1.main(["--feature", str(tmp_path / "gone.pt"), "--root", str(tmp_path)])
    table1.main(["--list-grid"])
    listed = capsys.readouterr().out
    assert listed.startswith("full: ") and "cpu: " in listed
    assert "injflow/w=0.001/nu=1/schedule=compressed" in listed


@pytest.mark.slow  # a real study (MNIST, 5 fits of 3 steps) in a subprocess
def test_the_script_runs_the_study_reports_it_and_continues(tmp_path, shared_data) -> None:
    root = tmp_path / "study"
    args = [sys.executable, str(ROOT / "bench" / "table1.py"), "--data-root", str(shared_data),
            "--steps", "3", "--batch-size", "16", "--latent-dim", "4", "--grid", "ae",
            "ae_l2/l2=0.01", "ae_l2/l2=0.1", "--seeds", "0", "1", "--eval-samples", "64",
            "--eval-train", "200", "--recalibrate", "2", "--no-wandb", "--root", str(root),
            "--workers", "2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # 3 selection trials; 4 test trials: seed 1 fits, seed 0 evaluates its selection run
    assert "7 of 7 trial(s) done, 0 failed" in done.stdout
    report = (root / "report.md").read_text()
    assert "| ae |" in report and "| ae_l2 |" in report
    assert (root / "report.csv").is_file() and (root / "report.tex").is_file()
    records = [json.loads(p.read_text()) for p in (root / "trials").glob("*.json")]
    assert {r["state"] for r in records} == {"done"}
    again = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "7 of 7 trial(s) done" in again.stdout and "took" not in again.stdout  # none rerun
    assert (root / "report.md").read_text() == report
