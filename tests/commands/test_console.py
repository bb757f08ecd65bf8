"""A correct `genae fit` prints its run folder, a progress bar and a summary; nothing else but
warnings that concern the user. A user error prints its message without a traceback, unless
--verbose (or GENAE_VERBOSE=1) asks for everything."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genae_lightning.cli import main
from genae_lightning.commands.console import console, is_user_error, split_verbose
from tests.journeys.installed import command_environment

# What a correct run printed before this was fixed, none of which concerns the user.
NOISE = (
    "LightningCLI's args parameter",  # and the 1.5 kB composed config it quoted
    "seed_everything: 0\\n",
    "litlogger",
    "GPU available",
    "anonymous setting",
    "git root",
    "is deprecated",
    "FutureWarning",
    "Run history",
    "Total params",
)
FIT = ["fit", "--config", "injflow_mnist", "--data", "genae_lightning.data.SyntheticImages",
       "--data.num_samples=64", "--data.batch_size=16",
       "--model.init_args.backbone.init_args.width=0.125", "--trainer.max_steps=2",
       "--trainer.limit_val_batches=1"]


def _genae(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genae_lightning.cli", *args], cwd=cwd,
                          env=command_environment(WANDB_MODE="offline", **env),
                          capture_output=True, text=True, timeout=300)


def test_a_correct_fit_prints_its_folder_progress_and_summary_and_no_library_noise(
    tmp_path,
) -> None:
    result = _genae([*FIT, "--trainer.default_root_dir", "out"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in printed, noise
    lines = result.stdout.replace("\r", "\n").splitlines()
    assert lines[0] == "genae fit: run folder out/injflow_mnist/version_0"
    assert any(line.startswith("Epoch 0:") for line in lines)  # the progress bar
    summary = result.stdout[result.stdout.index("genae fit: done in"):].splitlines()
    fields = {line.split()[0]: line.split(maxsplit=1)[1] for line in summary[1:]
              if line.split() and not line.startswith(" " * 4)}
    assert Path(tmp_path, fields["checkpoint"]).name == "last.ckpt"
    assert Path(tmp_path, fields["checkpoint"]).is_file()
    assert Path(tmp_path, fields["metrics"]).is_file()
    grid_dir, names = fields["grids"].split(": ")
    assert {"recon.png", "samples_gmm.png"} <= set(names.split(", "))
    assert all(Path(tmp_path, grid_dir, name).is_file() for name in names.split(", "))
    assert Path(tmp_path, fields["W&B"].split()[-1]).is_dir()  # "W&B run  <folder>"
    assert "knn/acc" in fields["final"] and "train/loss" in fields["final"]
    # the one warning that does concern the user, on one line of its own
    assert "genae: warning: GenerativeMetrics: FID is switched off" in result.stderr


def test_a_user_error_prints_its_message_without_a_traceback(tmp_path) -> None:
    result = _genae(["sample", "--ckpt_path", "missing.ckpt"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("genae: error: FileNotFoundError:")
    assert "missing.ckpt" in result.stderr and "--verbose" in result.stderr


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_verbose_keeps_the_traceback(tmp_path, how) -> None:
    args, env = (["sample", "--ckpt_path", "missing.ckpt"], {})
    if how == "flag":
        args.append("--verbose")
    else:
        env["GENAE_VERBOSE"] = "1"
    result = _genae(args, tmp_path, **env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "missing.ckpt" in result.stderr


def test_a_bug_keeps_its_traceback(tmp_path, capsys) -> None:
    """An error Python raised inside genae's code (not a `raise` of genae's) is not a user
    error: its traceback is what a bug report needs."""
    with pytest.raises(TypeError) as caught:
        split_verbose(None)  # type: ignore[arg-type]
    assert not is_user_error(caught.value)
    with pytest.raises(FileNotFoundError) as caught:
        main(["sample", "--ckpt_path", str(tmp_path / "missing.ckpt"), "--verbose"])
    assert is_user_error(caught.value)


def test_split_verbose() -> None:
    assert split_verbose(["fit", "--verbose", "-c", "x"]) == (["fit", "-c", "x"], True)
    assert split_verbose(["fit"])[1] is bool(os.environ.get("GENAE_VERBOSE"))


def test_console_quiets_lightning_info_only_inside_and_only_when_quiet(monkeypatch) -> None:
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    lightning = logging.getLogger("lightning.pytorch")
    assert lightning.isEnabledFor(logging.INFO)
    with console(verbose=False):
        assert not lightning.isEnabledFor(logging.INFO)
        assert lightning.isEnabledFor(logging.WARNING)
        assert os.environ["WANDB_SILENT"] == "true"
    assert lightning.isEnabledFor(logging.INFO) and "WANDB_SILENT" not in os.environ
    with console(verbose=True):
        assert lightning.isEnabledFor(logging.INFO)


def test_a_missing_dataset_is_one_message_not_a_traceback(tmp_path) -> None:
    result = _genae(["fit", "--config", "ae_mnist", "--data.root", "nodata",
                     "--data.download", "false", "--trainer.default_root_dir", "out"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = result.stderr[result.stderr.index("genae: error:"):]
    assert error.startswith("genae: error: FileNotFoundError: MNIST files missing from")
    assert "--data.root" in error  # the message says how to fix it
