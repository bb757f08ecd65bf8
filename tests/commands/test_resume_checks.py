"""`genae fit --ckpt_path` continues the checkpoint's run exactly or refuses, naming why."""

import csv
import shutil
from pathlib import Path

import pytest
import torch

from genae_lightning.cli import main
from genae_lightning.commands.resume import ResumeError

CONFIG = """
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  max_steps: {max_steps}
  log_every_n_steps: 1
  limit_val_batches: 1
  val_check_interval: 2
  check_val_every_n_epoch: null
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: out
      name: run
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        save_last: true
model:
  class_path: genae_lightning.methods.{method}
  init_args:
    latent_dim: 4
    backbone:
      class_path: genae_lightning.backbones.MLPBackbone
      init_args:
        hidden: [16]
data:
  class_path: genae_lightning.data.Digits
  init_args:
    batch_size: 64
    seed: 0
"""
STEPS = 4


def write_config(folder: Path, method: str, max_steps: int = STEPS) -> str:
    path = folder / f"{method.lower()}.yaml"
    path.write_text(CONFIG.format(method=method, max_steps=max_steps))
    return str(path)


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    """A folder holding out/run/version_0/checkpoints/last.ckpt of a 4-step AE run."""
    folder = tmp_path_factory.mktemp("ae_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        main(["fit", "--config", write_config(folder, "AE")])
    assert (folder / "out" / "run" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    return folder


@pytest.fixture
def ae_ckpt(ae_run) -> str:
    return str(ae_run / "out" / "run" / "version_0" / "checkpoints" / "last.ckpt")


def resume(tmp_path, monkeypatch, ckpt_path: str, *extra: str, method: str = "AE",
           max_steps: int = STEPS + 2) -> None:
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", write_config(tmp_path, method, max_steps), *extra,
          "--ckpt_path", ckpt_path])


def logged_steps(version: Path) -> list[int]:
    with open(version / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]


def test_resume_with_another_method_is_refused_naming_both(tmp_path, monkeypatch,
                                                           ae_ckpt) -> None:
    with pytest.raises(ResumeError, match=r"trained with method AE .*builds VAE"):
        resume(tmp_path, monkeypatch, ae_ckpt, method="VAE")


def test_model_override_differing_from_checkpoint_is_refused(tmp_path, monkeypatch,
                                                             ae_ckpt) -> None:
    with pytest.raises(ResumeError, match="latent_dim: 16 now, 4 in the checkpoint") as err:
        resume(tmp_path, monkeypatch, ae_ckpt, "--model.init_args.latent_dim", "16",
               "--model.init_args.backbone.init_args.hidden", "[8]")
    assert "backbone.init_args.hidden: [8] now, [16] in the checkpoint" in str(err.value)


@pytest.mark.parametrize(("key", "value", "saved"),
                         [("seed", "1", "0"), ("val_size", "0.2", "0.1"),
                          ("batch_size", "32", "64")])
def test_data_settings_that_split_or_order_the_data_are_refused(
        tmp_path, monkeypatch, ae_ckpt, key, value, saved) -> None:
    with pytest.raises(ResumeError, match=rf"{key}: {value} now, {saved} in the checkpoint"):
        resume(tmp_path, monkeypatch, ae_ckpt, f"--data.init_args.{key}", value)


def test_resume_with_same_settings_continues(tmp_path, monkeypatch, ae_ckpt) -> None:
    """in_memory (like num_workers or root) neither splits nor orders the data: it may change."""
    resume(tmp_path, monkeypatch, ae_ckpt, "--data.init_args.in_memory", "true")
    version = tmp_path / "out" / "run" / "version_0"
    assert logged_steps(version) == [STEPS, STEPS + 1]  # continued, not restarted
    last = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == STEPS + 2


def test_ckpt_path_last_finds_an_earlier_version(tmp_path, monkeypatch, ae_run) -> None:
    """A later version without checkpoints (a failed run) does not hide version_0's last.ckpt."""
    shutil.copytree(ae_run / "out", tmp_path / "out")
    (tmp_path / "out" / "run" / "version_1").mkdir()
    resume(tmp_path, monkeypatch, "last")
    assert logged_steps(tmp_path / "out" / "run" / "version_2") == [STEPS, STEPS + 1]


def test_ckpt_path_last_without_checkpoint_names_the_searched_paths(tmp_path,
                                                                     monkeypatch) -> None:
    (tmp_path / "out" / "run" / "version_0" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"searched:\n  out/run/version_0/checkpoints/"):
        resume(tmp_path, monkeypatch, "last")
