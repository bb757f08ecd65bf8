"""A plain (non-editable) `pip install` ships the configs: `genae fit --config quickstart` from
any directory (slow: a 2-step quickstart fit with the installed copy)."""

from pathlib import Path

import pytest

from tests.journeys.installed import run


@pytest.mark.slow
def test_pip_installed_genae_finds_its_bundled_configs(installed_genae, tmp_path) -> None:
    genae = installed_genae / "genae"
    venv = installed_genae.parent
    listing = run([genae, "configs"], tmp_path).stdout
    assert "quickstart" in listing and "injflow_cifar" in listing
    assert str(venv) in listing  # the installed copy, not the repository's configs/
    run([genae, "fit", "--config", "quickstart", "--trainer.max_steps", "2",
         "--trainer.enable_progress_bar", "false"], tmp_path)
    folder = tmp_path / "outputs" / "quickstart" / "injflow_ln_digits" / "version_0"
    assert (folder / "recon.png").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    sweep = run([genae, "configs", "--path", "injflow_mnist_sweep"], tmp_path).stdout
    assert Path(sweep.strip()).is_relative_to(venv)
