"""W&B runs compare methods: the run config holds the whole config, method, dataset and seed."""

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger

from genae_lightning.callbacks import GenerativeMetrics, ImageLogger
from genae_lightning.cli import main
from genae_lightning.commands.config_files import config_origin
from genae_lightning.commands.fit import apply_fid_feature
from genae_lightning.commands.report import record_from_wandb_run, wandb_config, wandb_run
from genae_lightning.data import Digits
from genae_lightning.features import SmallClassifier
from genae_lightning.loggers import (
    MAX_NAME_LENGTH,
    GenaeWandbLogger,
    config_run_name,
    describe_runs,
    run_name,
    run_settings,
)
from genae_lightning.methods import AE
from tests.commands.test_evaluate_wandb import wait_for_the_whole_run
from tests.conftest import REPO, tiny_trainer
from tests.metrics.conftest import TinyFeatures


def test_default_run_names() -> None:
    assert run_name("InjFlow", "MNIST", 0) == "InjFlow-MNIST-s0"
    assert run_name("AE", "CIFAR10") == "AE-CIFAR10"


# 2 steps of injflow_mnist with its log_every_n_steps (an override would change the run name)
@pytest.mark.filterwarnings("ignore:The number of training batches")
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
    # the config's name, the settings the command line changed (not where or how it ran), seed
    assert run.display_name == ("injflow_mnist-batch_size=16-data=SyntheticImages-max_steps=2-"
                                "num_samples=64-width=0.125-s3")
    assert run.run_group == "injflow_mnist"  # the config's name
    assert run.job_type == "train"
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
    assert record["fid_feature"] == config["fid_feature"]  # the report names the extractor
    assert {"cfid/gmm", "knn/acc"} <= set(record["metrics"])


def test_fid_features_are_named_once_and_logged_as_a_hyperparameter(tmp_path, caplog) -> None:
    metrics = GenerativeMetrics(every_n_epochs=None, num_samples=16, knn_train_samples=32,
                                batch_size=16, n_components=2, fid_feature=TinyFeatures(),
                                cache_dir=str(tmp_path / "cache"), progress=False)
    trainer = tiny_trainer(tmp_path, logger=CSVLogger(tmp_path), callbacks=[metrics])
    model = AE(image_shape=(1, 8, 8), latent_dim=4)
    with caplog.at_level("INFO"):
        trainer.fit(model, datamodule=Digits(batch_size=16))
    said = [r.getMessage() for r in caplog.records if "FID features of this run" in r.getMessage()]
    assert len(said) == 1 and metrics.fid_feature_id in said[0]
    assert f"logged as {metrics.fid.prefix}/*" in said[0]  # a custom module: its own FID keys
    assert metrics.fid.prefix.startswith("fid_tinyfeatures-")
    assert f"{metrics.fid.prefix}/gmm" in metrics.latest and "fid/gmm" not in metrics.latest
    hparams = Path(trainer.logger.log_dir, "hparams.yaml").read_text()
    assert f"fid_feature: {metrics.fid_feature_id}" in hparams and metrics.fid_feature_id != "none"


def test_fid_feature_needs_a_generative_metrics_callback(tmp_path) -> None:
    trainer = tiny_trainer(tmp_path, callbacks=[ImageLogger(n=4)])
    assert apply_fid_feature(trainer) is None
    with pytest.raises(ValueError, match="has none; expected a config whose trainer part"):
        apply_fid_feature(trainer, "features/mnist_classifier.pt")


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


def tiny_fit_args(root: Path, classifier: Path) -> list[str]:
    """Flags that shrink a bundled MNIST config to a 2-step run on synthetic images."""
    return ["--data", "genae_lightning.data.SyntheticImages", "--data.batch_size=16",
            "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false", "--trainer.default_root_dir", str(root),
            "--fid_feature", str(classifier)]


@pytest.mark.filterwarnings("ignore:The number of training batches")  # as above
def test_sweep_points_of_injflow_ln_mnist_are_named_by_their_config_and_settings(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    classifier = SmallClassifier((1, 28, 28), 10, width=4, num_features=8).save(
        tmp_path / "classifier.pt", dataset="SyntheticImages")
    main(["fit", "--config", "injflow_ln_mnist", *tiny_fit_args(tmp_path, classifier),
          "--model.init_args.constraint.init_args.nu=1.3",  # a point of the sweep's grid
          "--model.init_args.prior_weight=0.0001"])
    [run_file] = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    run, _ = wait_for_the_whole_run(run_file)
    # injflow_mnist's run of the same flags is injflow_mnist-...: the config's name comes first
    assert run.display_name == ("injflow_ln_mnist-batch_size=16-data=SyntheticImages-"
                                "max_steps=2-nu=1.3-prior_weight=0.0001-s0")
    assert run.run_group == "injflow_ln_mnist" and run.job_type == "train"
    # the run's saved config names its W&B run, for the jobs on its checkpoints
    [saved] = tmp_path.glob("injflow_ln_mnist/version_0/config.yaml")
    wandb_logger = yaml.safe_load(saved.read_text())["trainer"]["logger"][1]["init_args"]
    assert wandb_logger["name"] == run.display_name


@pytest.mark.parametrize("argv, name", [
    (["fit", "--config", "injflow_ln_mnist"], "injflow_ln_mnist-s0"),
    (["fit", "--config", "injflow_mnist"], "injflow_mnist-s0"),
    (["fit", "-c", "injflow_mnist", "--model.init_args.optimizer.init_args.lr", "1e-3",
      "--seed_everything", "1"], "injflow_mnist-lr=0.001-s1"),
    # where the run writes and how it is shown never name it; the later of two values does
    (["fit", "--config=injflow_mnist", "--trainer.default_root_dir", "/tmp/x",
      "--data.root", "/data", "--trainer.enable_progress_bar=false", "--model.init_args.eta",
      "0.2", "--model.init_args.eta=0.3"], "injflow_mnist-eta=0.3-s0"),
    # a further config file's settings are overrides too
    (["fit", "--config", "injflow_mnist", "--config",
      "model: {init_args: {constraint: {init_args: {nu: 1.3}}}}"], "injflow_mnist-nu=1.3-s0"),
])
def test_run_names_come_from_the_config_name_and_what_the_command_line_changed(
    argv, name
) -> None:
    origin = config_origin(argv)
    seed = next((int(v) for k, v in zip(argv, argv[1:], strict=False) if k == "--seed_everything"),
                0)
    config = {"model": {"init_args": {"optimizer": {"init_args": {"lr": 0.001}}}}}
    assert config_run_name(origin.name, run_settings(origin.overrides, config), seed) == name


def test_long_run_names_stay_short_and_distinct() -> None:
    settings = [(f"model.init_args.setting_{i}", 0.5) for i in range(12)]
    one = config_run_name("injflow_mnist", settings, 0)
    other = config_run_name("injflow_mnist", [*settings[:-1], ("model.init_args.setting_11", 1)])
    assert len(one) <= MAX_NAME_LENGTH and one.startswith("injflow_mnist-setting_0=0.5-")
    assert one.endswith("-s0") and one[:-3] != other
    # two settings sharing a last key are told apart by the key above it
    assert config_run_name("c", [("model.init_args.encoder.init_args.width", 1),
                                 ("model.init_args.decoder.init_args.width", 2)]) == (
        "c-decoder.width=2-encoder.width=1")


def test_run_without_a_config_name_keeps_the_method_dataset_name(tmp_path) -> None:
    for argv in (["fit", "--config", "{model: {class_path: AE}}"], ["fit", "--model", "AE"]):
        origin = config_origin(argv)
        assert origin is None or origin.name is None
    logger = GenaeWandbLogger(project="test", save_dir=str(tmp_path), offline=True)
    logger.describe_run("AE", "Digits", seed=2, job_type="train")
    assert logger.display_name == "AE-Digits-s2" and logger._wandb_init["job_type"] == "train"
    given = GenaeWandbLogger(name="mine", save_dir=str(tmp_path), offline=True, job_type="x")
    given.describe_run("AE", "Digits", name="injflow_mnist-s0", job_type="train")
    assert given.display_name == "mine" and given._wandb_init["job_type"] == "x"  # given wins


def test_keys_the_caller_put_in_the_run_config_win_over_the_class_names(tmp_path) -> None:
    # a study's trial names its method by the study's label (beta_vae), not the class (VAE)
    study = {"name": "tiny", "method": "beta_vae", "seed": 1}
    logger = GenaeWandbLogger(project="test", save_dir=str(tmp_path), offline=True,
                              config={"method": "beta_vae", "study": study})
    logger.describe_run("VAE", "SyntheticImages", {"model": {"class_path": "VAE"}}, seed=1)
    config = logger._wandb_init["config"]
    assert config["method"] == "beta_vae" and config["study"] == study  # the caller's
    assert config["dataset"] == "SyntheticImages" and config["seed"] == 1  # the defaults
    assert config["model"] == {"class_path": "VAE"}
    assert {"method", "dataset", "seed", "study"} <= logger._described_keys  # kept from hparams
