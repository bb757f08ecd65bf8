"""Jobs on a checkpoint (predict, test, evaluate) write into its run folder and log to W&B as
the training run: the same name and group, their own job type."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from genae_lightning.cli import main
from genae_lightning.commands.fit import save_predictions
from genae_lightning.commands.run_folders import checkpoint_run_folder
from genae_lightning.features import SmallClassifier
from tests.commands.test_evaluate_wandb import wait_for_the_whole_run

# injflow_mnist shrunk to a 2-step run on synthetic images (W&B offline: tests/conftest.py)
TINY = ["--config", "injflow_mnist", "--data", "genae_lightning.data.SyntheticImages",
        "--data.batch_size=16", "--model.init_args.backbone.init_args.width=0.125",
        "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false"]


# 2 steps of injflow_mnist with its log_every_n_steps (an override would change the run name)
pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny injflow_mnist run with CSV and W&B logs; returns its last.ckpt."""
    root = tmp_path_factory.mktemp("root")
    classifier = SmallClassifier((1, 28, 28), 10, width=4, num_features=8).save(
        root.parent / "classifier.pt", dataset="SyntheticImages")
    main(["fit", *TINY, "--trainer.default_root_dir", str(root), "--fid_feature",
          str(classifier)])
    [ckpt] = root.glob("injflow_mnist/version_0/checkpoints/last.ckpt")
    return ckpt


def wandb_runs(root: Path) -> dict[str, object]:
    """The offline W&B runs under ``root``, by job type."""
    runs = [wait_for_the_whole_run(f)[0] for f in root.glob("wandb/offline-run-*/run-*.wandb")]
    return {run.job_type: run for run in runs}


def folders(root: Path) -> list[Path]:
    """Every folder under ``root`` but W&B's."""
    return sorted(p for p in root.rglob("*") if p.is_dir() and "wandb" not in p.parts)


def test_predict_writes_into_the_checkpoint_run_folder_and_logs_as_the_training_run(
    trained
) -> None:
    run, root = trained.parents[1], trained.parents[3]
    before, config = folders(root), (run / "config.yaml").read_bytes()
    main(["predict", *TINY, "--trainer.default_root_dir", str(root), "--ckpt_path",
          str(trained)])
    predictions = torch.load(run / "predictions.pt", weights_only=True)
    assert set(predictions) == {"codes", "reconstructions", "labels"}
    assert folders(root) == before  # no version_1/
    assert (run / "config.yaml").read_bytes() == config  # the training's config stays
    jobs = wandb_runs(root)
    assert jobs["predict"].display_name == jobs["train"].display_name == (
        "injflow_mnist-batch_size=16-data=SyntheticImages-max_steps=2-width=0.125-s0")
    assert jobs["predict"].run_group == jobs["train"].run_group == "injflow_mnist"
    assert list(jobs["predict"].tags) == ["InjFlow", "SyntheticImages"]


def test_test_runs_on_a_checkpoint_log_as_the_training_run(trained) -> None:
    root = trained.parents[3]
    main(["test", *TINY, "--trainer.default_root_dir", str(root), "--trainer.limit_test_batches=1",
          "--ckpt_path", str(trained)])
    jobs = wandb_runs(root)
    assert jobs["test"].display_name == jobs["train"].display_name
    assert jobs["test"].run_group == "injflow_mnist"


EVALUATE = ["--device", "cpu", "--no_fid", "true", "--num_samples", "16",
            "--knn_train_samples", "32", "--batch_size", "16", "--progress", "false"]


def test_evaluate_writes_into_the_checkpoint_run_folder(trained, tmp_path) -> None:
    run, root = trained.parents[1], trained.parents[3]
    before = folders(root)
    main(["evaluate", "--ckpt_path", str(trained), *EVALUATE])
    assert json.loads((run / "evaluation.json").read_text())["global_step"] == 2
    assert (run / "evaluation.md").is_file() and folders(root) == before
    # a run folder without its config.yaml: still the folder above checkpoints/
    copy = tmp_path / "copied_run" / "checkpoints" / "last.ckpt"
    copy.parent.mkdir(parents=True)
    shutil.copy(trained, copy)
    main(["evaluate", "--ckpt_path", str(copy), "--data", "genae_lightning.data.SyntheticImages",
          "--data.batch_size", "16", *EVALUATE])
    assert (tmp_path / "copied_run" / "evaluation.json").is_file()
    assert not (copy.parent / "evaluation.json").exists()


def test_checkpoint_run_folder(tmp_path) -> None:
    assert checkpoint_run_folder(tmp_path / "run" / "checkpoints" / "a.ckpt") == tmp_path / "run"
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "config.yaml").write_text("{}")
    assert checkpoint_run_folder(tmp_path / "flat" / "a.ckpt") == tmp_path / "flat"
    assert checkpoint_run_folder(tmp_path / "loose" / "a.ckpt") == tmp_path / "loose"


@pytest.mark.parametrize("world_size, rank, name", [(1, 0, "predictions.pt"),
                                                    (2, 1, "predictions-rank1.pt")])
def test_predictions_are_one_file_per_process(world_size, rank, name, tmp_path) -> None:
    batch = {"codes": torch.zeros(2, 3), "labels": torch.arange(2)}
    trainer = SimpleNamespace(predict_loop=SimpleNamespace(predictions=[batch, batch]),
                              global_rank=rank, world_size=world_size)
    path = save_predictions(trainer, tmp_path / "run")
    assert path == tmp_path / "run" / name
    assert torch.load(path, weights_only=True)["codes"].shape == (4, 3)
