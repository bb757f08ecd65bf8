"""Small CLI faults get clear outcomes: sample's --out/--nrow/--n, report, traverse, log folders."""

import pytest
import torch
from PIL import Image

from genae_lightning import cli
from genae_lightning.backbones import MLPBackbone
from genae_lightning.commands import sample as sample_command
from genae_lightning.commands.report import collect_records
from genae_lightning.data import Digits, SyntheticImages
from genae_lightning.methods import AE
from tests.conftest import REPO, tiny_trainer


@pytest.fixture
def ckpt(tmp_path):
    """A tiny AE checkpoint of 8x8 images."""
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[16]))
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 8, 8), num_samples=40,
                                                  batch_size=4))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    return path


def sample(*args: str) -> object:
    return cli.main(["sample", *args])


def test_sample_into_a_folder_writes_samples_png(ckpt, tmp_path) -> None:
    sample("--ckpt_path", str(ckpt), "--prior", "standard", "--n", "4",
           "--out", f"{tmp_path / 'grids'}/")
    assert Image.open(tmp_path / "grids" / "samples.png").size == (4 * 8 + 5, 8 + 2)


@pytest.mark.parametrize(("out", "what"), [("grid", "no file extension"),
                                           ("grid.xyz", "extension '.xyz'")])
def test_sample_out_without_a_known_extension_is_an_argument_error(ckpt, tmp_path, capsys, out,
                                                                   what) -> None:
    with pytest.raises(SystemExit) as exit_:
        sample("--ckpt_path", str(ckpt), "--prior", "standard", "--out", str(tmp_path / out))
    assert exit_.value.code == 2
    assert f"has {what}: pass a file name ending in .png" in capsys.readouterr().err


def test_sample_nrow_zero_is_an_argument_error(ckpt, capsys) -> None:
    with pytest.raises(SystemExit):
        sample("--ckpt_path", str(ckpt), "--nrow", "0")
    assert "--nrow must be >= 1 (images per row of the grid), got 0" in capsys.readouterr().err


def test_sample_refuses_more_than_one_viewable_grid(ckpt, capsys) -> None:
    with pytest.raises(SystemExit):
        sample("--ckpt_path", str(ckpt), "--n", "100000000")
    assert "--n must be between 1 and 10,000 (one grid; larger grids are not viewable), got " \
           "100,000,000" in capsys.readouterr().err


def test_sample_decodes_in_batches_into_the_same_grid(ckpt, tmp_path, monkeypatch) -> None:
    sample("--ckpt_path", str(ckpt), "--prior", "standard", "--n", "10", "--nrow", "5",
           "--out", str(tmp_path / "one.png"))
    sizes = []
    original = AE.sample
    monkeypatch.setattr(AE, "sample", lambda self, n, **kw: (sizes.append(n),
                                                             original(self, n, **kw))[1])
    monkeypatch.setattr(sample_command, "SAMPLE_BATCH", 4)
    sample("--ckpt_path", str(ckpt), "--prior", "standard", "--n", "10", "--nrow", "5",
           "--out", str(tmp_path / "batched.png"))
    assert sizes == [4, 4, 2]
    one, batched = Image.open(tmp_path / "one.png"), Image.open(tmp_path / "batched.png")
    assert one.size == batched.size == (5 * 8 + 6, 2 * 8 + 3)


def test_report_names_a_malformed_evaluation_json(tmp_path) -> None:
    bad = tmp_path / "run" / "evaluation.json"
    bad.parent.mkdir()
    bad.write_text('{"name": "AE", "metrics": ')
    with pytest.raises(ValueError, match=rf"'{bad}' is not valid JSON .*genae evaluate"):
        collect_records([tmp_path / "run"])
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a JSON list, not the object"):
        cli.main(["report", str(bad)])


def test_traverse_checks_the_checkpoint_before_asking_for_data(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        cli.main(["traverse", "--ckpt_path", str(tmp_path / "missing.ckpt")])
    assert f"checkpoint '{tmp_path / 'missing.ckpt'}' does not exist" in str(err.value)
    assert "data" not in str(err.value).split("(under")[0]


class FailingSetup(Digits):
    """Digits whose setup fails, as a broken dataset would, after the logger made its folder."""

    def setup(self, stage: str) -> None:
        raise RuntimeError("broken dataset")


def test_a_failed_fit_leaves_no_empty_version_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="broken dataset"):
        cli.main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"),
                  "--data", "tests.commands.test_cli_faults.FailingSetup",
                  "--trainer.max_steps", "1"])
    runs = tmp_path / "outputs" / "quickstart" / "injflow_ln_digits"
    assert not runs.exists() or not list(runs.iterdir()), list(runs.rglob("*"))


def test_quickstart_config_writes_grids_into_the_run_folder() -> None:
    import yaml

    config = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    loggers = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ImageLogger")]
    assert loggers and "save_dir" not in loggers[0].get("init_args", {})
    readme = (REPO / "README.md").read_text()
    assert "outputs/quickstart/injflow_ln_digits/version_<N>/" in readme
    assert "outputs/quickstart/recon.png" not in readme
