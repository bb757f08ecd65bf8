"""`genae train-features`, `genae evaluate` and `genae report` on two tiny trained checkpoints."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.cli import main
from genae_lightning.commands.evaluate import build_parser, fid_feature_argument
from genae_lightning.commands.report import csv_table, markdown_table, record_from_csv_log

# classifier features: classifier FID keys (cfid/*), never the Inception ones (fid/*)
KEYS = {"cfid/recon", "cfid/prior", "cfid/gaussian", "cfid/gmm", "knn/acc", "val/rec_sse"}


def fit_config(method: str, root: Path) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 5, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
            "num_sanity_val_steps": 0, "limit_val_batches": 1, "log_every_n_steps": 1,
            "default_root_dir": str(root),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root), "name": method.lower()}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"save_last": True}},
                {"class_path": "genae_lightning.callbacks.FitLatentPrior",
                 "init_args": {"n_components": 2}},
            ],
        },
        "model": {"class_path": f"genae_lightning.methods.{method}", "init_args": {
            "latent_dim": 4,
            "backbone": {"class_path": "genae_lightning.backbones.MLPBackbone",
                         "init_args": {"hidden": [32]}}}},
        "data": {"class_path": "genae_lightning.data.Digits", "init_args": {"batch_size": 32}},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs (AE, VAE) on the bundled digits; returns their last.ckpt by method."""
    root = tmp_path_factory.mktemp("runs")
    ckpts = {}
    for method in ("AE", "VAE"):
        config = root / f"{method}.yaml"
        config.write_text(yaml.safe_dump(fit_config(method, root)))
        main(["fit", "--config", str(config)])
        ckpts[method] = root / method.lower() / "version_0" / "checkpoints" / "last.ckpt"
        assert ckpts[method].is_file()
    return ckpts


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("features") / "digits.pt"
    main(["train-features", "--data", "Digits", "--data.batch_size", "32", "--width", "8",
          "--epochs", "2", "--out", str(out)])
    return out


def evaluate_args(ckpt: Path, classifier: Path, tmp_path: Path) -> list[str]:
    return ["evaluate", "--ckpt_path", str(ckpt), "--fid_feature", str(classifier),
            "--num_samples", "64", "--knn_train_samples", "300", "--batch_size", "64",
            "--cache_dir", str(tmp_path / "cache"), "--device", "cpu", "--progress", "false"]


def test_train_features_learns_the_digits(classifier) -> None:
    saved = torch.load(classifier, weights_only=True)
    assert saved["info"]["dataset"] == "Digits" and saved["info"]["test_accuracy"] > 0.5


def test_evaluate_then_report_gives_the_comparison_table(runs, classifier, tmp_path, capsys):
    records = {}
    for method, ckpt in runs.items():
        main(evaluate_args(ckpt, classifier, tmp_path))
        run_dir = ckpt.parent.parent  # the log dir holding config.yaml
        records[method] = json.loads((run_dir / "evaluation.json").read_text())
        assert (run_dir / "evaluation.md").read_text() == markdown_table([records[method]])
    ae = records["AE"]
    assert set(ae["metrics"]) == KEYS and ae["dataset"] == "Digits" and ae["global_step"] == 5
    assert ae["fid_feature"].startswith("classifier-") and ae["num_images"] == 64
    assert ae["samplers"] == {"gaussian": "checkpoint", "gmm": "checkpoint"}
    assert "| AE | Digits | 5 |" in capsys.readouterr().out  # the one-row table is printed

    out = tmp_path / "report"
    main(["report", *(str(ckpt.parents[1]) for ckpt in runs.values()), "--out", str(out)])
    per_run = out.with_suffix(".md").read_text().split("\n## ")[0]  # the "## Runs" table
    lines = per_run.strip().splitlines()[2:]
    assert lines[0].startswith("| Method | Dataset | Config | Seed | Steps | Rec. cFID | N cFID |")
    assert " FID |" not in lines[0]  # no Inception columns: no run has an Inception FID
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| AE", "| VAE"]
    assert lines[2].startswith("| AE | Digits | ae | 0 | 5 |")  # config name (CSV log), seed
    vae_fid = f"{records['VAE']['metrics']['cfid/recon']:.2f}"
    assert vae_fid in lines[3]
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [r["method"] for r in rows] == ["AE", "VAE"]
    assert float(rows[0]["knn/acc"]) == pytest.approx(ae["metrics"]["knn/acc"])


def test_evaluate_reads_data_from_the_command_line_or_says_how(runs, tmp_path, capsys) -> None:
    lone = tmp_path / "lone.ckpt"  # a checkpoint without its run's config.yaml
    shutil.copy(runs["AE"], lone)
    with pytest.raises(SystemExit):
        main(["evaluate", "--ckpt_path", str(lone), "--no_fid", "true"])
    assert "cannot tell which data" in capsys.readouterr().err
    main(["evaluate", "--ckpt_path", str(lone), "--no_fid", "true", "--data", "Digits",
          "--num_samples", "32", "--progress", "false", "--name", "mine"])
    record = json.loads((tmp_path / "evaluation.json").read_text())
    assert record["name"] == "mine" and set(record["metrics"]) == {"knn/acc", "val/rec_sse"}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["evaluate", "--ckpt_path", str(tmp_path / "missing.ckpt")])


def test_report_from_csv_logs_and_errors(tmp_path) -> None:
    run = tmp_path / "run" / "version_0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "model": {"class_path": "genae_lightning.methods.InjFlow"},
        "data": {"class_path": "genae_lightning.data.MNIST"}}))
    (run / "metrics.csv").write_text("epoch,fid/recon,knn/acc,step,train/loss\n"
                                     "0,,,9,1.5\n0,12.5,0.9,10,\n1,10.0,0.95,20,\n1,,,21,1.0\n")
    record = record_from_csv_log(run / "metrics.csv")
    assert record["name"] == "InjFlow" and record["dataset"] == "MNIST"
    assert record["global_step"] == 20 and record["metrics"] == {"fid/recon": 10.0, "knn/acc": 0.95}
    main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "r")])
    row = "| InjFlow | MNIST | InjFlow | – | 20 | 10.00 | – | – | – | 0.9500 | – | – |"
    assert row in (tmp_path / "r.md").read_text()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results under"):
        main(["report", str(tmp_path / "empty")])


def test_evaluate_can_recalibrate_batchnorm_first(runs, tmp_path) -> None:
    config = fit_config("AE", tmp_path)
    config["model"]["init_args"]["backbone"]["init_args"]["batch_norm"] = True
    (tmp_path / "bn.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(tmp_path / "bn.yaml")])
    ckpt = tmp_path / "ae" / "version_0" / "checkpoints" / "last.ckpt"
    saved = ckpt.read_bytes()
    common = ["evaluate", "--ckpt_path", str(ckpt), "--no_fid", "true", "--num_samples", "64",
              "--batch_size", "64", "--progress", "false"]
    records = {}
    for n in (0, 3):
        main([*common, "--recalibrate_batchnorm", str(n), "--out", str(tmp_path / f"{n}.json")])
        records[n] = json.loads((tmp_path / f"{n}.json").read_text())
    assert records[0]["recalibrated_batchnorm_batches"] == 0
    assert records[0]["samplers"] == {"gaussian": "checkpoint", "gmm": "checkpoint"}
    assert records[3]["recalibrated_batchnorm_batches"] == 3
    # training batches: the data's batch size, not the evaluation's --batch_size
    assert records[3]["batchnorm"]["batch_size"] == config["data"]["init_args"]["batch_size"] != 64
    assert records[3]["samplers"] == {"gaussian": "fitted here", "gmm": "fitted here"}
    assert records[3]["metrics"]["val/rec_sse"] != records[0]["metrics"]["val/rec_sse"]
    assert ckpt.read_bytes() == saved  # evaluation never writes the checkpoint
    with pytest.raises(ValueError, match="no BatchNorm layer"):  # the MLP of `runs` has none
        main(["evaluate", "--ckpt_path", str(runs["AE"]), "--no_fid", "true",
              "--recalibrate_batchnorm", "2", "--progress", "false", "--out",
              str(tmp_path / "x.json")])


def test_fit_records_the_batchnorm_check_and_evaluate_checks_unchecked_checkpoints(
        tmp_path, capsys) -> None:
    config = fit_config("AE", tmp_path)
    config["model"]["init_args"]["backbone"]["init_args"]["batch_norm"] = True
    # tolerance 0: any difference between the two modes recalibrates
    config["trainer"]["callbacks"][1]["init_args"].update(batchnorm_tolerance=0.0,
                                                          batchnorm_batches=3)
    (tmp_path / "bn.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(tmp_path / "bn.yaml")])
    folder = tmp_path / "ae" / "version_0" / "checkpoints"
    record = torch.load(folder / "last.ckpt", weights_only=False)["genae"]["batchnorm"]
    assert record["checked"] and record["recalibrated"] and record["batches"] == 3
    assert record["train_error"] > 0 and record["eval_error"] > 0 and record["split"] == "val"
    assert record["step"] == 5
    logged = list(csv.DictReader((tmp_path / "ae" / "version_0" / "metrics.csv").open()))
    assert any(row.get("batchnorm/recalibrated") == "1.0" for row in logged)

    common = ["evaluate", "--no_fid", "true", "--num_samples", "64", "--batch_size", "32",
              "--progress", "false"]
    capsys.readouterr()
    main([*common, "--ckpt_path", str(folder / "last.ckpt"), "--out", str(tmp_path / "a.json")])
    assert "using the checkpoint's statistics, checked at the end of fit (recalibrated" in \
        capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["batchnorm"]["source"] == "checkpoint"
    # the epoch checkpoint of the final step was rewritten after the end-of-fit check too
    epoch = next(p for p in folder.iterdir() if p.name != "last.ckpt")
    checkpoint = torch.load(epoch, weights_only=False)
    assert checkpoint["genae"]["batchnorm"]["recalibrated"]
    # a checkpoint without the record (written before the check): evaluate checks it
    del checkpoint["genae"]["batchnorm"]
    unchecked = folder / "unchecked.ckpt"
    torch.save(checkpoint, unchecked)
    main([*common, "--ckpt_path", str(unchecked), "--out", str(tmp_path / "b.json")])
    assert "BatchNorm check (auto): reconstruction error" in capsys.readouterr().out
    checked_here = json.loads((tmp_path / "b.json").read_text())["batchnorm"]
    assert checked_here["source"] == "checked here" and checked_here["tolerance"] == 0.5


def test_report_keeps_fids_of_different_features_apart(tmp_path) -> None:
    def evaluation(name: str, features: str, fid: str, value: float) -> Path:
        path = tmp_path / f"evaluation_{name}.json"
        path.write_text(json.dumps({"name": name, "dataset": "MNIST", "global_step": 1,
                                    "features": features,
                                    "metrics": {f"{fid}/recon": value, "knn/acc": 0.5}}))
        return path

    paths = [evaluation("A", "inception2048", "fid", 11.0),
             evaluation("B", "classifier-0123abcd", "cfid", 22.0),
             evaluation("C", "Sequential-4f2a", "fid_sequential-4f2a", 33.0)]
    main(["report", *map(str, paths), "--out", str(tmp_path / "r")])
    table = (tmp_path / "r.md").read_text().split("\n## ")[0].removeprefix("## Runs\n\n")
    titles = [t.strip() for t in table.splitlines()[0].strip("|").split("|")]
    recon = [titles.index(t) for t in ("Rec. FID", "Rec. cFID", "Rec. FID (sequential-4f2a)")]
    rows = {line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines()[2:]}
    for name, column, value in zip("ABC", recon, ("11.00", "22.00", "33.00"), strict=True):
        assert rows[name][column] == value  # each FID in its own extractor's column
        assert [c for i, c in enumerate(rows[name]) if i in recon and i != column] == ["–", "–"]
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert {"fid/recon", "cfid/recon", "fid_sequential-4f2a/recon"} <= set(header)
    records = [json.loads(p.read_text()) for p in paths]
    assert csv_table(records[:1]).splitlines()[0].count("cfid") == 0  # only what is there


def test_report_reads_classifier_fid_from_csv_logs(tmp_path) -> None:
    run = tmp_path / "run" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,cfid/gmm,fid/gmm,knn/acc,step\n"
                                     "0,4.0,,0.9,10\n1,,7.0,0.95,20\n")
    record = record_from_csv_log(run / "metrics.csv")
    assert record["metrics"] == {"cfid/gmm": 4.0, "fid/gmm": 7.0, "knn/acc": 0.95}
    table = markdown_table([record])
    assert "GMM FID" in table and "GMM cFID" in table  # two columns, not one mixed


def test_the_old_feature_flag_is_a_deprecated_name_of_fid_feature() -> None:
    parser = build_parser()
    new = parser.parse_args(["--ckpt_path", "x.ckpt", "--fid_feature", "a.pt"])
    assert fid_feature_argument(new) == "a.pt"
    old = parser.parse_args(["--ckpt_path", "x.ckpt", "--feature", "a.pt"])
    with pytest.warns(FutureWarning, match="--feature is deprecated: it is now named "
                                           "--fid_feature"):
        assert fid_feature_argument(old) == "a.pt"
