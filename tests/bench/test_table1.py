"""bench/table1.py end to end at a tiny budget: selection on validation, skip on rerun, outputs."""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
POINTS = ["ae_l2/l2=0.01", "ae_l2/l2=0.1", "injflow_ln/w=0.01/nu=1/schedule=compressed",
          "injflow_ln/w=0.001/nu=1/schedule=literal"]
TINY = ["--dataset", "digits", "--steps", "3", "--batch-size", "32", "--latent-dim", "4",
        "--methods", "ae_l2", "injflow_ln", "--grid", *POINTS, "--seeds", "0", "1",
        "--eval-samples", "64", "--eval-train", "200", "--feature-epochs", "1",
        "--recalibrate", "2", "--reference-steps", "1000", "--time-steps-factor", "3",
        "--threads", "1"]


def run_table(results: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "table1.py"), *TINY, *extra,
                           "--results", str(results)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # runs bench/table1.py in subprocesses: pytest -m slow
def test_table1_selects_on_validation_and_skips_finished_runs(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    # split by --methods (as two processes would run it): the baseline's equal wall-clock runs
    # wait until InjFlow-ln's selection and seeds are in the file, and say so
    first = run_table(results, "--methods", "ae_l2")
    assert "equal wall-clock runs not started" in first and "injflow_ln's selection" in first
    assert not [line for line in results.read_text().splitlines() if '"phase": "time"' in line]
    run_table(results, "--methods", "injflow_ln", "--phases", "grid", "seeds")
    stdout = run_table(results)  # the two equal wall-clock runs are all that is left
    assert "trained 2 run(s)" in stdout
    records = [json.loads(line) for line in results.read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    tests = [r for r in records if r["kind"] == "test"]
    assert {r["point"] for r in train if r["seed"] == 0} == set(POINTS)  # the whole grid, seed 0
    for r in train:
        assert {"train_mode", "eval_mode_ema"} <= set(r["bn_probe"])
        assert "cfid/gmm" in r["val"]["ema"]  # classifier FID on CPU: cfid/*, never fid/*
        assert not [k for k in r["val"]["ema"] if k.startswith("fid")]
    with (tmp_path / "table1.csv").open() as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"AE+L2", "InjFlow-ln"}
    for row in rows.values():
        assert {"rec", "n", "gmm", "paper_gmm", "gmm_equal_time", "setting", "batchnorm",
                "val_gmm", "seeds"} <= set(row)
    for label, method in (("AE+L2", "ae_l2"), ("InjFlow-ln", "injflow_ln")):
        candidates = [(r["val"][bn]["cfid/gmm"], r["point"], bn) for r in train
                      if r["method"] == method and r["seed"] == 0 for bn in r["val"]]
        best = min(candidates)
        assert (rows[label]["setting"], rows[label]["batchnorm"]) == best[1:]
        assert float(rows[label]["val_gmm"]) == round(best[0], 2)
        assert rows[label]["seeds"] == "2" and "±" in rows[label]["gmm"]
        # test metrics exist only for the selected setting (the others were never tested)
        assert {r["point"] for r in tests if r["method"] == method} == {best[1]}
    timed = [r for r in tests if r["phase"] == "time"]
    assert {r["method"] for r in timed} == {"ae_l2"} and len(timed) == 2  # equal wall-clock
    assert "±" in rows["AE+L2"]["gmm_equal_time"]
    assert "| AE+L2 |" in (tmp_path / "table1.md").read_text() and "| InjFlow-ln |" in stdout
    again = run_table(results)  # every run is kept: nothing is trained or evaluated again
    assert "trained 0 run(s)" in again
    assert len(results.read_text().splitlines()) == len(records)
    # another estimator's table (its runs share the results file) never overwrites this one
    table = (tmp_path / "table1.md").read_text()
    run_table(results, "--jac-fraction", "0.5", "--phases")
    assert (tmp_path / "table1.md").read_text() == table
    other = (tmp_path / "table1_jac_fraction=0.5.md").read_text()
    assert other.startswith("Table 1, digits [jac_fraction=0.5]: ")  # the title names it
    assert "InjFlow-ln" not in other  # no runs of that estimator yet


@pytest.mark.slow  # runs bench/table1.py in subprocesses: pytest -m slow
def test_table1_grid_presets_and_unknown_points() -> None:
    listed = subprocess.run([sys.executable, str(ROOT / "bench" / "table1.py"), "--list-grid"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr[-2000:]
    presets = dict(line.split(": ", 1) for line in listed.stdout.splitlines())
    full, cpu = presets["full"].split(), presets["cpu"].split()
    # the paper's grids: 2 x (6 weights x 2 nu x 2 schedules + 6 AL) + 5 + 6 + 5 + 3
    assert len(full) == 2 * (6 * 2 * 2 + 6) + 5 + 6 + 5 + 3
    assert set(cpu) < set(full) and "injflow_ln/w=0.01/nu=1/schedule=compressed" in cpu
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "table1.py"), "--grid", "ae/x=1",
                          "--dataset", "digits"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert bad.returncode != 0 and "unknown grid point or preset 'ae/x=1'" in bad.stderr


def test_selection_skips_failed_runs_and_non_finite_fids() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import table1

    study = table1.Study.__new__(table1.Study)  # selection only: no FID scorer, no files
    study.args = argparse.Namespace(selection_seed=0)
    study.prefix = "cfid"  # classifier FID
    base = {"kind": "train", "phase": "steps", "method": "ae_l2", "seed": 0}
    study.records = [
        {**base, "point": "ae_l2/l2=0.01",
         "val": {"ema": {"cfid/gmm": float("nan")}, "recal": {"cfid/gmm": 7.0}}},
        {**base, "point": "ae_l2/l2=0.1", "val": {}, "failed": "ValueError: diverged"},
        {**base, "point": "ae_l2/l2=0.5", "seed": 1, "val": {"ema": {"cfid/gmm": 1.0}}},
    ]
    chosen = study.select(["ae_l2/l2=0.01", "ae_l2/l2=0.1", "ae_l2/l2=0.5"])
    assert chosen["ae_l2"]["point"] == "ae_l2/l2=0.01" and chosen["ae_l2"]["bn"] == "recal"
    assert (chosen["ae_l2"]["grid_done"], chosen["ae_l2"]["grid_size"]) == (1, 3)


def test_a_missing_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import table1

    study = table1.Study.__new__(table1.Study)  # no FID scorer: the run stops before scoring
    study.args = argparse.Namespace(selection_seed=0)
    study.results = tmp_path / "results.jsonl"
    point = "ae_l2/l2=0.01"
    record = {"kind": "train", "phase": "steps", "method": "ae_l2", "point": point, "seed": 0,
              "val": {}, "train_seconds": 1.0, "checkpoint": str(tmp_path / "gone.pt")}
    study.refresh = lambda: None  # the records below stand for the results file
    study.records = [record]
    with pytest.raises(SystemExit, match=r"gone\.pt, are missing .* delete that run's line"):
        study.test_run(point, 0, "ema")


def test_the_ema_statistics_survive_recalibration(tmp_path: Path) -> None:
    """A selection run keeps EMA and recalibrated states apart (test runs load either)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import table1
    from torch.utils.data import TensorDataset

    args = argparse.Namespace(dataset="mnist", width=0.25, latent_dim=4, batch_size=16,
                              recalibrate=2)
    model, _ = table1.build(args, "ae", (1, 28, 28))
    ema = table1.snapshot(model)  # as trained: running mean 0, variance 1 (no step taken)
    images = torch.rand(64, 1, 28, 28)
    dm = argparse.Namespace(train_dataset=TensorDataset(images, torch.zeros(64)),
                            val_dataset=TensorDataset(images[:8], torch.zeros(8)))
    study = table1.Study.__new__(table1.Study)  # training and scoring stubbed out
    study.args, study.prefix, study.ckpt_dir = args, "cfid", tmp_path
    study.train = lambda point, seed: (model, dm, 1.0, 0)
    study.evaluate = lambda *a: {"cfid/gmm": 1.0}
    study.append = lambda record: None
    record = study._selection_run("ae", 0)
    states = torch.load(record["checkpoint"], weights_only=True)
    stats = [k for k in ema if k.endswith(("running_mean", "running_var"))]
    assert stats and set(states) == {"ema", "recal"}
    assert all(torch.equal(states["ema"][k], ema[k]) for k in ema)  # untouched by recalibration
    assert all(not torch.equal(states["recal"][k], ema[k]) for k in stats)
    assert all(torch.equal(states["recal"][k], v) for k, v in model.state_dict().items())
    # a checkpoint saved before the copy (EMA overwritten by the recalibration) is refused
    torch.save({"ema": states["recal"], "recal": states["recal"]}, record["checkpoint"])
    study.results = tmp_path / "results.jsonl"
    study.refresh = lambda: None
    study.records = [{**record, "train_seconds": 1.0}]
    with pytest.raises(SystemExit, match=r"EMA statistics are lost\. Delete that run's line"):
        study.test_run("ae", 0, "ema")
