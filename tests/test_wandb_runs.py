"""W&B runs compare methods: the run config holds the whole config, method, dataset and seed."""

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger

from genae_lightning.callbacks import GenerativeMetrics, ImageLogger
from genae_lightning.cli import main
from genae_lightning.commands.report import record_from_wandb_run, wandb_config, wandb_run
from genae_lightning.data import Digits
from genae_lightning.features import SmallClassifier
from genae_lightning.loggers import GenaeWandbLogger, describe_runs, fid_features, run_name
from genae_lightning.methods import AE
from tests.commands.test_evaluate_wandb import wait_for_the_whole_run
from tests.conftest import REPO, tiny_trainer
from tests.metrics.conftest import TinyFeatures


def test_default_run_names() -> None:
    assert run_name("InjFlow", "MNIST", 0) == "InjFlow-MNIST-s0"
    assert run_name("AE", "CIFAR10") == "AE-CIFAR10"


def test_an_offline_run_of_injflow_mnist_carries_method_dataset_config_and_seed(
    tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    classifier = SmallClassifier((1, 28, 28), 10, width=4, num_features=8).save(
        tmp_path / "classifier.pt", dataset="SyntheticImages")
    main(["fit", "--config", "injflow_mnist", "--seed_everything", "3",
          "--data", "genae_lightning.data.SyntheticImages", "--data.num_samples=64",
          "--data.batch_size=16", "--model.init_args.backbone.init_args.width=0.125",
          "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
          "--trainer.enable_progress_bar=false", "--trainer.default_root_dir", str(tmp_path),
          "--fid_feature", str(classifier)])
    runs = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    run, rows = wait_for_the_whole_run(runs[0])
    assert run.display_name == "InjFlow-SyntheticImages-s3"  # <method>-<dataset>-s<seed>
    assert run.run_group == "injflow_mnist"  # the config's name
    config = wandb_config(runs[0])
    assert config["method"] == "InjFlow" and config["dataset"] == "SyntheticImages"
    assert config["seed"] == 3 and config["seed_everything"] == 3
    assert config["data"]["init_args"]["seed"] == 0  # the data's split seed stays nested
    assert config["trainer"]["max_steps"] == 2  # the trainer settings, nested as in the YAML
    callbacks = {c["class_path"].rsplit(".", 1)[-1]: c.get("init_args", {})
                 for c in config["trainer"]["callbacks"]}
    assert "FitLatentPrior" in callbacks and "GenerativeMetrics" in callbacks
    assert config["model"]["init_args"]["constraint"]["init_args"]["nu"] == 1.0
    assert config["model"]["init_args"]["backbone"]["init_args"]["width"] == 0.125
    # the FID of this run used the classifier: said in the config (exact id) and in the rows
    assert config["fid_feature"].startswith("classifier-")
    # classifier FID is logged as cfid/*, never under the Inception keys fid/*
    assert any("cfid/gmm" in row for row in rows)
    assert not [k for row in rows for k in row if k.startswith("fid")]
    record = record_from_wandb_run(runs[0])
    assert record["name"] == "InjFlow" and record["dataset"] == "SyntheticImages"
    assert record["features"] == config["fid_feature"]  # the report names the extractor
    assert {"cfid/gmm", "knn/acc"} <= set(record["metrics"])


def test_fid_features_are_named_once_and_logged_as_a_hyperparameter(tmp_path, caplog) -> None:
    metrics = GenerativeMetrics(every_n_epochs=None, num_samples=16, knn_train_samples=32,
                                batch_size=16, n_components=2, feature=TinyFeatures(),
                                cache_dir=str(tmp_path / "cache"), progress=False)
    trainer = tiny_trainer(tmp_path, logger=CSVLogger(tmp_path), callbacks=[metrics])
    model = AE(image_shape=(1, 8, 8), latent_dim=4)
    with caplog.at_level("INFO"):
        trainer.fit(model, datamodule=Digits(batch_size=16))
    said = [r.getMessage() for r in caplog.records if "FID features of this run" in r.getMessage()]
    assert len(said) == 1 and metrics.feature_id in said[0]
    assert f"logged as {metrics.fid.prefix}/*" in said[0]  # a custom module: its own FID keys
    assert metrics.fid.prefix.startswith("fid_tinyfeatures-")
    assert f"{metrics.fid.prefix}/gmm" in metrics.latest and "fid/gmm" not in metrics.latest
    hparams = Path(trainer.logger.log_dir, "hparams.yaml").read_text()
    assert f"fid_feature: {metrics.feature_id}" in hparams and metrics.feature_id != "none"


def test_fid_feature_needs_a_generative_metrics_callback(tmp_path) -> None:
    trainer = tiny_trainer(tmp_path, callbacks=[ImageLogger(n=4)])
    assert fid_features(trainer) is None
    with pytest.raises(ValueError, match="has none; expected a config whose trainer part"):
        fid_features(trainer, "features/mnist_classifier.pt")


def test_python_runs_are_named_and_described_without_a_config(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = GenaeWandbLogger(project="test", save_dir=str(tmp_path))
    trainer = tiny_trainer(tmp_path, logger=logger)
    model = AE(image_shape=(1, 8, 8), latent_dim=4)
    describe_runs(trainer, model, Digits(batch_size=16), {"seed_everything": 7})
    trainer.fit(model, datamodule=Digits(batch_size=16))
    run_file = next(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    run, _ = wait_for_the_whole_run(run_file)
    assert run.display_name == "AE-Digits-s7" and run.run_group == "Digits"
    config = wandb_config(run_file)
    assert (config["method"], config["dataset"], config["seed"]) == ("AE", "Digits", 7)
    assert config["latent_dim"] == 4  # the model's hyperparameters, flat, as Lightning logs them
    assert wandb_run(run_file)[0] is not None


def test_paper_trainer_parts_set_no_fid_feature_by_default() -> None:
    part = yaml.safe_load((REPO / "configs" / "trainer" / "paper.yaml").read_text())
    assert "fid_feature" in part and part["fid_feature"] is None
