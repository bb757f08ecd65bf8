"""A plain (non-editable) `pip install` ships the configs: `genae fit --config quickstart` from
any directory (slow: builds and installs the package into a throwaway venv)."""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _run(args: list, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy only
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_pip_installed_genae_finds_its_bundled_configs(tmp_path) -> None:
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the repo
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO)
    for name in files.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    # the dependencies (torch, ...) and the build backend come from this interpreter's packages
    (next(venv.glob("lib/python*/site-packages")) / "deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", source],
         tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    listing = _run([venv / "bin" / "genae", "configs"], empty)
    assert "quickstart" in listing and "injflow_cifar" in listing
    assert str(venv) in listing  # the installed copy, not the repository's configs/
    _run([venv / "bin" / "genae", "fit", "--config", "quickstart", "--trainer.max_steps", "2",
          "--trainer.enable_progress_bar", "false"], empty)
    run = empty / "outputs" / "quickstart" / "injflow_ln_digits" / "version_0"
    assert (run / "recon.png").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    sweep = _run([venv / "bin" / "genae", "configs", "--path", "injflow_mnist_sweep"], empty)
    assert Path(sweep.strip()).is_relative_to(venv)
