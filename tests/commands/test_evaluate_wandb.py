"""W&B: offline runs hold the logged keys, grouped by dataset and tagged by method; the sweep."""

import time

import pytest
import torch
import yaml

from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import GenerativeMetrics, ImageLogger
from genae_lightning.cli import main
from genae_lightning.commands.report import record_from_wandb_run, wandb_records, wandb_run
from genae_lightning.data import Digits
from genae_lightning.loggers import GenaeWandbLogger, describe_runs, has_wandb_credentials
from genae_lightning.methods import AE
from tests.conftest import REPO, tiny_trainer
from tests.metrics.conftest import TINY_FID, TinyFeatures


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def wait_for_the_whole_run(run_file, timeout: float = 60.0):
    """W&B's service may still be writing the run file after ``finish()`` returns."""
    start = time.monotonic()
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_file)):
        assert time.monotonic() - start < timeout, "the offline W&B run file was never completed"
        time.sleep(0.2)
    return wandb_run(run_file)


def test_offline_run_directory_holds_the_logged_keys(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]))
    data = Digits(batch_size=32)
    logger = GenaeWandbLogger(project="test", save_dir=str(tmp_path), tags=["smoke"])
    metrics = GenerativeMetrics(every_n_epochs=None, num_samples=32, knn_train_samples=100,
                                batch_size=32, n_components=2, fid_feature=TinyFeatures(),
                                cache_dir=str(tmp_path / "cache"), progress=False)
    trainer = tiny_trainer(tmp_path, max_steps=3, logger=logger, log_every_n_steps=1,
                           callbacks=[metrics, ImageLogger(n=4)])
    describe_runs(trainer, model, data)  # what `genae fit` does before fitting
    trainer.fit(model, datamodule=data)

    runs = list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    run, rows = wait_for_the_whole_run(runs[0])
    keys = set().union(*rows)
    expected = {"train/loss", "knn/acc", "val/rec_sse",
                *(f"{TINY_FID}/{kind}" for kind in ("recon", "prior", "gaussian", "gmm"))}
    assert expected <= keys
    for grid in ("recon", "samples_standard", "samples_gmm"):  # images, with their PNG files
        assert f"images/{grid}/filenames" in keys
        assert list(runs[0].parent.glob(f"files/media/images/images/{grid}_*.png"))
    assert run.run_group == "Digits" and list(run.tags) == ["smoke", "AE", "Digits"]
    summary = record_from_wandb_run(runs[0])
    assert summary["name"] == "smoke" and summary["dataset"] == "Digits"  # first non-group tag
    assert set(summary["metrics"]) >= {f"{TINY_FID}/recon", "knn/acc"}


def test_no_login_goes_offline_with_a_warning(tmp_path, no_wandb_login) -> None:
    assert not has_wandb_credentials()
    with pytest.warns(UserWarning, match="no W&B API key found.*OFFLINE.*wandb sync"):
        logger = GenaeWandbLogger(save_dir=str(tmp_path))
    assert logger._offline


def test_a_configured_key_logs_online(tmp_path, no_wandb_login, monkeypatch) -> None:
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert has_wandb_credentials()
    assert not GenaeWandbLogger(save_dir=str(tmp_path))._offline
    monkeypatch.setenv("WANDB_MODE", "offline")  # the environment wins, no warning
    assert not GenaeWandbLogger(save_dir=str(tmp_path), offline=None)._offline


@pytest.mark.parametrize("nu, weight", [("1.3", "0.0001"), ("1.0", "1.0")])
def test_sweep_flags_reach_the_penalty_and_the_model(nu, weight, capsys) -> None:
    sweep = yaml.safe_load((REPO / "configs" / "sweeps" / "injflow_mnist_sweep.yaml").read_text())
    assert set(sweep["parameters"]) == {"model.init_args.constraint.init_args.nu",
                                        "model.init_args.prior_weight"}
    config = str(REPO / "configs" / "injflow_mnist.yaml")
    with pytest.raises(SystemExit):
        main(["fit", "--config", config, f"--model.init_args.constraint.init_args.nu={nu}",
              f"--model.init_args.prior_weight={weight}", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    penalty = printed["model"]["init_args"]["constraint"]
    assert penalty["class_path"].endswith("Penalty")
    assert penalty["init_args"]["nu"] == float(nu)
    assert printed["model"]["init_args"]["prior_weight"] == float(weight)
