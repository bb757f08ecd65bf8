"""Checkpoints run no code, damaged ones are named as such, saves are atomic, shapes are checked."""

import errno
import io
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.checkpoints.io import SafeCheckpointIO
from genae_lightning.checkpoints.reading import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    read_checkpoint,
)
from genae_lightning.cli import main
from genae_lightning.methods import AE, load_method
from tests.commands.test_evaluate import fit_config

# What a malicious pickle calls: os.system is posix.system on Linux.
SYSTEM = f"{os.system.__module__}.{os.system.__name__}"


class Evil:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_config(root: Path, **data) -> Path:
    """A tiny `genae fit` config (AE on the bundled 8x8 digits unless ``data`` says otherwise)."""
    config = fit_config("AE", root)
    config["trainer"]["max_steps"] = 2
    config["trainer"]["callbacks"] = config["trainer"]["callbacks"][:1]  # no prior fitting
    if data:
        config["data"] = data
    path = root / "config_in.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny `genae fit` run on the digits; returns its last.ckpt (config.yaml one folder up)."""
    root = tmp_path_factory.mktemp("run")
    main(["fit", "--config", str(write_config(root))])
    ckpt = root / "ae" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture
def evil(run, tmp_path) -> tuple[Path, Path]:
    """A genae checkpoint whose hyperparameters hold an Evil object, beside the run's config."""
    checkpoint = read_checkpoint(run)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["backbone"] = Evil(marker)
    ckpt = run.parent / "evil.ckpt"
    torch.save(checkpoint, ckpt)
    return ckpt, marker


def check_refusal(err: pytest.ExceptionInfo, ckpt: Path, marker: Path) -> None:
    message = str(err.value)
    assert str(ckpt) in message
    assert repr(SYSTEM) in message and "does not allow" in message
    assert not marker.exists()


LOADERS = {
    "read_checkpoint": read_checkpoint,
    "load_method": load_method,
    "load_from_checkpoint": AE.load_from_checkpoint,
    "SafeCheckpointIO": lambda path: SafeCheckpointIO().load_checkpoint(path),
}


@pytest.mark.parametrize("loader", LOADERS.values(), ids=list(LOADERS))
def test_malicious_checkpoint_runs_no_code_through_public_loaders(evil, loader) -> None:
    ckpt, marker = evil
    with pytest.raises(UnsafeCheckpointError) as err:
        loader(ckpt)
    check_refusal(err, ckpt, marker)


def test_malicious_checkpoint_runs_no_code_through_any_command(evil, tmp_path) -> None:
    ckpt, marker = evil
    config = str(write_config(tmp_path))
    commands = [
        ["sample", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "s.png")],
        ["evaluate", "--ckpt_path", str(ckpt), "--no_fid", "true", "--progress", "false",
         "--device", "cpu", "--out", str(tmp_path / "e.json")],
        ["traverse", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "t.png")],
        ["fit", "--config", config, "--ckpt_path", str(ckpt)],
        ["validate", "--config", config, "--ckpt_path", str(ckpt)],
        ["test", "--config", config, "--ckpt_path", str(ckpt)],
    ]
    for command in commands:
        with pytest.raises(UnsafeCheckpointError) as err:
            main(command)
        check_refusal(err, ckpt, marker)
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "t.png").exists()


def test_weights_only_false_is_refused(run) -> None:
    with pytest.raises(ValueError, match="weights_only=True only"):
        AE.load_from_checkpoint(run, weights_only=False)
    with pytest.raises(ValueError, match="weights_only=True only"):
        SafeCheckpointIO().load_checkpoint(run, weights_only=False)


def test_every_public_loader_rebuilds_the_run(run) -> None:
    saved = read_checkpoint(run)["state_dict"]
    for model in (load_method(run), AE.load_from_checkpoint(run),
                  AE.load_from_checkpoint(io.BytesIO(run.read_bytes()))):
        assert type(model) is AE
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, saved[key])
    assert AE.load_from_checkpoint(run, latent_dim=4).latent_dim == 4


def damaged(run: Path, folder: Path) -> dict[str, Path]:
    """A truncated copy of the run's checkpoint, a garbage file and an empty file."""
    data = run.read_bytes()
    files = {"truncated": data[: len(data) // 2], "garbage": os.urandom(4096),
             "empty": b"", "cut_at_start": data[:100]}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.ckpt"
        paths[name].write_bytes(content)
    return paths


def test_corrupt_or_truncated_checkpoints_are_named(run, tmp_path) -> None:
    for name, path in damaged(run, tmp_path).items():
        with pytest.raises(CorruptCheckpointError, match="is corrupt or truncated") as err:
            read_checkpoint(path)
        assert str(path) in str(err.value), name
        assert "Resume from another checkpoint of the run" in str(err.value)


def test_corrupt_checkpoint_is_named_by_commands(run, tmp_path) -> None:
    truncated = damaged(run, run.parent)["truncated"]  # beside the run's config.yaml
    config = str(write_config(tmp_path))
    for command in (["sample", "--ckpt_path", str(truncated)],
                    ["traverse", "--ckpt_path", str(truncated), "--out", str(tmp_path / "t.png")],
                    ["fit", "--config", config, "--ckpt_path", str(truncated)],
                    ["validate", "--config", config, "--ckpt_path", str(truncated)]):
        with pytest.raises(CorruptCheckpointError, match="is corrupt or truncated") as err:
            main(command)
        assert str(truncated) in str(err.value), command[0]


def half_then_disk_full(real_save):
    """A torch.save that writes half of the file, then fails as a full disk does."""

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        if isinstance(f, io.BytesIO):  # into memory: no disk involved
            f.write(data)
            return
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as file:
                file.write(data[: len(data) // 2])
        else:
            f.write(data[: len(data) // 2])
            f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    return save


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(run, tmp_path, monkeypatch) -> None:
    checkpoint = read_checkpoint(run)
    target = tmp_path / "epoch=0-step=20.ckpt"
    monkeypatch.setattr(torch, "save", half_then_disk_full(torch.save))
    with pytest.raises(OSError, match="could not write checkpoint") as err:
        SafeCheckpointIO().save_checkpoint(checkpoint, target)
    assert err.value.errno == errno.ENOSPC and str(target) in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no truncated file, no temporary file
    shutil.copy(run, target)
    before = target.read_bytes()
    with pytest.raises(OSError, match="the older file of that name is kept"):
        SafeCheckpointIO().save_checkpoint(checkpoint, target)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    SafeCheckpointIO().save_checkpoint(checkpoint, target)  # a good save replaces it
    assert read_checkpoint(target)["state_dict"].keys() == checkpoint["state_dict"].keys()
    assert list(tmp_path.iterdir()) == [target]


def test_genae_fit_saves_atomically_by_default(tmp_path, monkeypatch) -> None:
    """A full disk during `genae fit`'s save leaves no checkpoint under a valid name."""
    config = write_config(tmp_path)
    monkeypatch.setattr(torch, "save", half_then_disk_full(torch.save))
    with pytest.raises(OSError, match="could not write checkpoint"):
        main(["fit", "--config", str(config)])
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "ckpt" in p.name] == []


def test_checkpoint_of_other_image_shape_names_both_shapes(tmp_path) -> None:
    """A checkpoint of 28x28 images run on the 8x8 digits (validate/test) says so."""
    big = {"class_path": "genae_lightning.data.SyntheticImages",
           "init_args": {"image_shape": [1, 28, 28], "num_samples": 32, "batch_size": 16}}
    (tmp_path / "big").mkdir()
    main(["fit", "--config", str(write_config(tmp_path / "big", **big))])
    ckpt = next((tmp_path / "big").rglob("last.ckpt"))
    digits = str(write_config(tmp_path))
    for command in ("validate", "test"):
        with pytest.raises(ValueError, match=r"images of shape \(1, 28, 28\), but this model "
                           r"\(and its data\) has image_shape \(1, 8, 8\)") as err:
            main([command, "--config", digits, "--ckpt_path", str(ckpt)])
        assert str(ckpt) in str(err.value)
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(1, 8, 8\)"):
        AE.load_from_checkpoint(ckpt, image_shape=(1, 8, 8))


def test_read_checkpoint_refuses_a_non_dictionary(tmp_path) -> None:
    path = tmp_path / "list.ckpt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="is not a checkpoint: it holds a list"):
        read_checkpoint(path)


def test_a_0_1_checkpoint_is_refused_naming_its_version_and_the_fix(tmp_path) -> None:
    """0.2.0 changed the hyperparameters' shape (prior/constraint objects, VAE = DPVAE)."""
    from genae_lightning import __version__
    from genae_lightning.checkpoints.loading import method_class

    assert __version__.startswith("0.2.")
    checkpoint = {"genae": {"method": "genae_lightning.methods.dpvae.DPVAE", "version": "0.1.0"}}
    with pytest.raises(ValueError, match=r"written by genae-lightning 0\.1\.0, which is not "
                                         r"compatible .* install genae-lightning==0\.1\.0"):
        method_class(checkpoint, "old.ckpt")
