"""``genae report`` groups the runs of one config: a seed per run, mean ± sd per config."""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from genae_lightning.cli import main
from genae_lightning.commands.report import flatten_settings, read_evaluation, run_fields


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The markdown tables of a report by section title (``Runs``, ``Mean ± sd ...``)."""
    found: dict[str, list[dict[str, str]]] = {}
    for section in text.split("## ")[1:]:
        title, *lines = section.strip().splitlines()
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in lines if line.startswith("|")]
        found[title.split(" ")[0]] = [dict(zip(rows[0], row, strict=True)) for row in rows[2:]]
    return found


def run_config(name: str, seed: int, root: Path, latent_dim: int = 4) -> dict:
    """A run's saved ``config.yaml`` as ``genae fit --config <name>`` writes it."""
    return {
        "seed_everything": seed,
        "trainer": {
            "max_steps": 20, "default_root_dir": str(root),
            "logger": [{"class_path": "genae_lightning.loggers.GenaeCSVLogger",
                        "init_args": {"save_dir": str(root), "name": name, "version": None}},
                       {"class_path": "genae_lightning.loggers.GenaeWandbLogger",
                        "init_args": {"save_dir": str(root), "group": name,
                                      "name": f"{name}-s{seed}"}}],
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": None, "save_last": True}},
                          {"class_path": "genae_lightning.callbacks.FitLatentPrior",
                           "init_args": {"n_components": 2, "seed": 0}}],
        },
        "model": {"class_path": f"genae_lightning.methods.{name.split('_')[0].upper()}",
                  "init_args": {"latent_dim": latent_dim,
                                "backbone": {"class_path": "genae_lightning.backbones.MLPBackbone",
                                             "init_args": {"hidden": [32]}}}},
        "data": {"class_path": "genae_lightning.data.Digits",
                 "init_args": {"root": str(root / "data"), "batch_size": 32}},
    }


def fake_run(root: Path, name: str, seed: int, metrics: dict[str, float], **config) -> Path:
    """A run folder as ``genae fit`` leaves it: ``config.yaml`` and the CSV log of its metrics."""
    folder = root / name / f"version_{len(list((root / name).glob('version_*')))}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(run_config(name, seed, root, **config)))
    keys = sorted(metrics)
    (folder / "metrics.csv").write_text(
        f"epoch,{','.join(keys)},step,train/loss\n0,{','.join(['']*len(keys))},9,1.5\n"
        f"0,{','.join(str(metrics[k]) for k in keys)},20,\n")
    return folder


def test_two_seeds_of_a_config_get_mean_and_sd_next_to_their_rows(tmp_path, capsys) -> None:
    # two seeds of ae_digits, each in its own output folder; one run of vae_digits
    runs = [fake_run(tmp_path / "s0", "ae_digits", 0,
                     {"fid/recon": 10.0, "fid/gmm": 5.0, "knn/acc": 0.90}),
            fake_run(tmp_path / "s1", "ae_digits", 1, {"fid/recon": 13.0, "knn/acc": 0.95}),
            fake_run(tmp_path / "s0", "vae_digits", 0, {"fid/recon": 20.0, "knn/acc": 0.80})]
    out = tmp_path / "report"
    main(["report", *map(str, runs), "--out", str(out)])
    text = out.with_suffix(".md").read_text()
    assert text in capsys.readouterr().out

    per_run, grouped = tables(text)["Runs"], tables(text)["Mean"]
    assert [(r["Config"], r["Seed"], r["Rec. FID"]) for r in per_run] == [
        ("ae_digits", "0", "10.00"), ("ae_digits", "1", "13.00"), ("vae_digits", "0", "20.00")]
    ae, vae = grouped
    # by hand: mean (10 + 13) / 2 = 11.5; sample sd sqrt((1.5² + 1.5²) / (2 - 1)) = 2.1213...
    assert (ae["Config"], ae["Method"], ae["n"], ae["Seeds"]) == ("ae_digits", "AE", "2", "0, 1")
    assert ae["Rec. FID"] == "11.50 ± 2.12"
    assert ae["5-NN acc."] == "0.9250 ± 0.0354"  # 0.925, sqrt(2 * 0.025²) = 0.035355
    assert ae["GMM FID"] == "5.00 (n=1)"  # only one of the two runs has it
    assert ae["N FID"] == "–"
    assert (vae["n"], vae["Seeds"], vae["Rec. FID"]) == ("1", "0", "20.00")  # n = 1: no ±
    assert "±" not in "".join(vae.values())

    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [(r["config"], r["seed"]) for r in rows] == [
        ("ae_digits", "0"), ("ae_digits", "1"), ("vae_digits", "0")]
    groups = list(csv.DictReader((tmp_path / "report_groups.csv").open()))
    assert [(g["config"], g["n"], g["seeds"]) for g in groups] == [
        ("ae_digits", "2", "0 1"), ("vae_digits", "1", "0")]
    assert float(groups[0]["fid/recon/mean"]) == pytest.approx(11.5)
    assert float(groups[0]["fid/recon/sd"]) == pytest.approx(math.sqrt(4.5))
    assert float(groups[0]["knn/acc/sd"]) == pytest.approx(0.025 * math.sqrt(2))
    assert groups[0]["fid/gmm/n"] == "1" and groups[0]["fid/gmm/sd"] == ""
    assert float(groups[1]["fid/recon/mean"]) == 20.0 and groups[1]["fid/recon/sd"] == ""


def test_runs_of_one_config_name_with_other_settings_are_apart(tmp_path) -> None:
    runs = [fake_run(tmp_path, "ae_digits", seed, {"fid/recon": value}, latent_dim=dim)
            for seed, value, dim in ((0, 1.0, 4), (1, 3.0, 4), (0, 7.0, 8))]
    out = tmp_path / "r"
    main(["report", *map(str, runs), "--out", str(out)])
    grouped = tables(out.with_suffix(".md").read_text())["Mean"]
    assert [(g["Config"], g["n"], g["Seeds"], g["Rec. FID"]) for g in grouped] == [
        ("ae_digits (model.latent_dim=4)", "2", "0, 1", "2.00 ± 1.41"),
        ("ae_digits (model.latent_dim=8)", "1", "0", "7.00")]


def test_evaluations_take_the_seed_of_their_checkpoints_run(tmp_path) -> None:
    evaluations = []
    for seed, value in ((0, 0.5), (1, 0.7)):
        run = fake_run(tmp_path, "injflow_mnist", seed, {"knn/acc": 0.1})
        evaluation = run / "evaluation.json"
        evaluation.write_text(json.dumps({
            "name": "InjFlow", "method": "InjFlow", "dataset": "MNIST", "global_step": 20,
            "checkpoint": str(run / "checkpoints" / "last.ckpt"), "split": "test",
            "features": "inception2048", "metrics": {"fid/gmm": value},
            "settings": {"num_samples": 64, "seed": 0, "progress": seed == 0}}))
        evaluations.append(evaluation)
    out = tmp_path / "r"
    main(["report", *map(str, evaluations), "--out", str(out)])
    found = tables(out.with_suffix(".md").read_text())
    assert [r["Seed"] for r in found["Runs"]] == ["0", "1"]
    (group,) = found["Mean"]  # progress output is no setting
    assert (group["Config"], group["n"], group["GMM FID"]) == ("injflow_mnist", "2", "0.60 ± 0.14")


def test_run_fields_of_a_wandb_run_config() -> None:
    config = {"method": "AE", "dataset": "Digits", "seed": 3, "fid_feature": None,
              "seed_everything": 3, "model": {"class_path": "genae_lightning.methods.AE",
                                              "init_args": {"latent_dim": 4}}}
    fields = run_fields(config, group="ae_digits")
    assert fields == {"config": "ae_digits", "seed": 3, "run_settings": {
        "model": "genae_lightning.methods.AE", "model.latent_dim": 4}}
    callbacks = {"trainer": {"callbacks": [
        {"class_path": "a.Checkpoint", "init_args": {"dirpath": "x", "every": 5}},
        {"class_path": "a.Metrics", "init_args": {"k": 5}},
        {"class_path": "a.Metrics", "init_args": {"k": 7}}]}}
    assert flatten_settings(callbacks) == {
        "trainer.callbacks.Checkpoint": "a.Checkpoint", "trainer.callbacks.Checkpoint.every": 5,
        "trainer.callbacks.1": "a.Metrics", "trainer.callbacks.1.k": 5,
        "trainer.callbacks.2": "a.Metrics", "trainer.callbacks.2.k": 7}


@pytest.mark.parametrize("key", ["fid_feature", "features"])  # "features": older genae evaluate
def test_evaluation_records_name_their_fid_feature_under_either_key(tmp_path, key) -> None:
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps({"name": "AE", "dataset": "MNIST", "global_step": 1,
                                key: "inception2048", "metrics": {"fid/gmm": 1.0}}))
    record = read_evaluation(path)
    assert record["fid_feature"] == "inception2048" and "features" not in record
    main(["report", str(path), "--out", str(tmp_path / "r")])
    assert tables((tmp_path / "r.md").read_text())["Runs"][0]["FID features"] == "inception2048"
    assert "fid_feature" in (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
