"""The `genae` command: fit from a config, sample from the checkpoint, help, clear errors."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from genae_lightning.cli import main
from tests.conftest import REPO

QUICK = ["--trainer.max_steps", "30", "--trainer.val_check_interval", "10",
         "--trainer.log_every_n_steps", "10", "--trainer.enable_progress_bar", "false"]


@pytest.fixture
def quickstart_run(tmp_path, monkeypatch) -> Path:
    """A quickstart run (few steps) in a temporary working directory; returns its last.ckpt."""
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(REPO / "configs" / "quickstart.yaml"), *QUICK])
    ckpts = list(tmp_path.rglob("last.ckpt"))
    assert len(ckpts) == 1
    return ckpts[0]


def test_quickstart_writes_grids_and_samples_from_its_gmm(quickstart_run, tmp_path) -> None:
    out = quickstart_run.parent.parent  # the run's own version_<N> folder
    assert out == tmp_path / "outputs" / "quickstart" / "injflow_ln_digits" / "version_0"
    for name in ("recon", "samples_standard", "samples_gaussian", "samples_gmm"):
        assert (out / f"{name}.png").is_file(), name
        assert not (out.parent.parent / f"{name}.png").exists()  # not in a folder runs share
    main(["sample", "--ckpt_path", str(quickstart_run), "--n", "16", "--prior", "gmm",
          "--out", str(tmp_path / "s.png"), "--nrow", "4"])
    image = Image.open(tmp_path / "s.png")
    assert image.size == (4 * 8 + 5, 4 * 8 + 5)  # 4x4 grid of 8x8 digits with 1-pixel padding


def test_sample_rejects_missing_or_foreign_checkpoints(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["sample", "--ckpt_path", str(tmp_path / "nope.ckpt")])
    import torch

    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a genae-lightning checkpoint"):
        main(["sample", "--ckpt_path", str(tmp_path / "other.ckpt")])


def test_console_script_help_lists_injflow_hyperparameters() -> None:
    exe = Path(sys.executable).with_name("genae")
    result = subprocess.run([str(exe), "fit", "--model.help", "InjFlow"], capture_output=True,
                            text=True, timeout=120, check=True)
    for name in ("bound", "prior_weight", "eta", "jvp", "fd_eps", "latent_dim"):
        assert f"--model.{name}" in result.stdout, name
    assert "{log,linear}" in result.stdout


def test_missing_mnist_files_give_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        main(["fit", "--config", str(REPO / "configs" / "ae_mnist.yaml"),
              "--data.root", str(tmp_path / "empty"), "--data.download", "false",
              "--trainer.max_steps", "1"])


def test_help_lists_every_command_and_version_prints_it(capsys) -> None:
    from genae_lightning import __version__
    from genae_lightning.cli import COMMANDS

    main(["--help"])
    listed = capsys.readouterr().out
    for command in ["fit", "validate", "test", "predict", *COMMANDS]:
        assert f"\n  {command} " in listed, command
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"genae-lightning {__version__}"


def test_device_defaults_to_auto_in_every_checkpoint_command(monkeypatch, capsys) -> None:
    from genae_lightning.commands import checkpoints

    for command in ("sample", "evaluate", "traverse"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--device DEVICE" in help_text and "auto: a GPU when there is one" in help_text
    monkeypatch.setattr(checkpoints.torch.cuda, "is_available", lambda: True)
    assert checkpoints.resolve_device("auto") == "cuda"
    monkeypatch.setattr(checkpoints.torch.cuda, "is_available", lambda: False)
    assert checkpoints.resolve_device("auto") == "cpu"
    monkeypatch.setattr(checkpoints.torch.cuda, "device_count", lambda: 2)
    assert checkpoints.resolve_device("cuda:1") == "cuda:1"


def test_predict_writes_codes_and_reconstructions_of_the_test_split(quickstart_run, tmp_path):
    import torch

    from genae_lightning import Digits, load_method

    main(["predict", "--config", str(REPO / "configs" / "quickstart.yaml"),
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir",
          str(tmp_path / "predict"), "--ckpt_path", str(quickstart_run)])
    path = quickstart_run.parents[1] / "predictions.pt"  # the checkpoint's run folder
    assert not list((tmp_path / "predict").rglob("version_*"))  # and no new run folder
    predictions = torch.load(path, weights_only=True)
    model = load_method(quickstart_run).eval()
    data = Digits()
    data.setup("predict")
    n = len(data.test_dataset)
    assert predictions["codes"].shape == (n, model.latent_dim)
    assert predictions["reconstructions"].shape == (n, *model.image_shape)
    assert predictions["labels"].shape == (n,)
    x, _ = next(iter(data.test_dataloader()))
    with torch.no_grad():
        assert torch.allclose(predictions["codes"][: len(x)], model.encode(x), atol=1e-5)
        assert torch.allclose(predictions["reconstructions"][: len(x)], model(x), atol=1e-5)


def test_listing_piped_into_a_reader_that_stops_early_exits_quietly():
    # `genae configs | head -1`: the reader closes the pipe; no BrokenPipeError traceback
    process = subprocess.Popen([sys.executable, "-m", "genae_lightning.cli", "configs"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    first = process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert first.strip()
    assert b"BrokenPipeError" not in err and process.returncode == 0, err.decode()[-2000:]
