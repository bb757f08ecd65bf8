"""Two runs in one output root keep their own folders: checkpoints, metrics and image grids."""

from genae_lightning.cli import main
from tests.conftest import REPO

GRIDS = ("recon", "samples_standard", "samples_gaussian", "samples_gmm")


def run_quickstart() -> None:
    main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
          "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"])


def test_a_second_run_in_the_same_root_gets_its_own_version_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "outputs" / "quickstart" / "injflow_ln_digits"
    run_quickstart()
    first = {p: p.stat().st_mtime_ns for p in (runs / "version_0").rglob("*") if p.is_file()}
    run_quickstart()
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    for version in ("version_0", "version_1"):
        for name in GRIDS:
            assert (runs / version / f"{name}.png").is_file(), (version, name)
        assert (runs / version / "checkpoints" / "last.ckpt").is_file(), version
        assert (runs / version / "metrics.csv").is_file(), version
    assert {p: p.stat().st_mtime_ns for p in first} == first  # the first run's files untouched
    assert not list((tmp_path / "outputs" / "quickstart").glob("*.png"))  # no shared grids
