"""Journey (a): a pip-installed `genae fit` of a bundled paper config, W&B offline; the `.wandb`
record read back with wandb's own reader holds the run's config, name, group and job type, and
the images W&B stored have the pixels of the local grids."""

from pathlib import Path

import numpy as np
from PIL import Image

from genae_lightning.commands.report import wandb_config
from tests.commands.test_evaluate_wandb import wait_for_the_whole_run
from tests.journeys.installed import run

FIT = ["fit", "--config", "injflow_mnist", "--seed_everything", "0",
       "--data", "genae_lightning.data.SyntheticImages", "--data.num_samples=64",
       "--data.batch_size=16", "--model.init_args.backbone.init_args.width=0.125",
       "--trainer.max_steps=2", "--trainer.limit_val_batches=1"]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_pip_installed_fit_logs_a_wandb_run_that_reads_back(installed_genae, tmp_path) -> None:
    result = run([installed_genae / "genae", *FIT], tmp_path, WANDB_MODE="offline")
    assert "Traceback" not in result.stderr
    folder = tmp_path / "outputs" / "injflow_mnist"
    local = folder / "injflow_mnist" / "version_0"
    assert f"run folder {local.relative_to(tmp_path)}" in result.stdout

    (run_file,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    record, rows = wait_for_the_whole_run(run_file)
    assert record.run_group == "injflow_mnist" and record.job_type == "train"
    name = record.display_name  # the config's name, its overridden settings, the seed
    assert name.startswith("injflow_mnist-") and name.endswith("-s0")
    config = wandb_config(run_file)
    assert config["method"] == "InjFlow" and config["dataset"] == "SyntheticImages"
    assert config["seed"] == 0
    assert config["model"]["class_path"].endswith("InjFlow")
    assert config["trainer"]["max_steps"] == 2

    stored = {key.removeprefix("images/").removesuffix("/filenames"): value[0]
              for row in rows for key, value in row.items()
              if key.startswith("images/") and key.endswith("/filenames")}
    assert {"recon", "samples_gmm", "samples_standard"} <= set(stored)
    for name, path in stored.items():
        grid = _pixels(local / f"{name}.png")
        assert np.array_equal(_pixels(run_file.parent / "files" / path), grid), name
        assert grid.max() > 0, name  # not the black grids W&B used to store
