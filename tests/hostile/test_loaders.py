"""Every loader over every hostile file: nothing named in a file is imported, each is refused.

The corpus (:mod:`tests.hostile.corpus`) holds crafted checkpoints, pretrained folders, run
folders and ``--config`` files. The marker module lies in the current folder and in
site-packages; importing it writes a marker file. Each loader either refuses the file with a
message that names it (and, where the case says, the offending value), or loads it without
using what was planted; in no case is the marker module imported.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.checkpoints.pretrained import from_pretrained
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.cli import main
from genae_lightning.methods import AE, load_method
from tests.commands.test_evaluate import fit_config
from tests.hostile import corpus
from tests.hostile.corpus import PAYLOAD, Hostile

# Cases a loader may read without refusing, because it never uses the part that was planted.
IGNORED = {
    "instantiator": "the _instantiator entry is dropped, never looked up",
    "datamodule_class_path": "only a resume compares the data's class",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A genuine tiny run and pretrained folder, and the hostile corpus derived from them."""
    root = tmp_path_factory.mktemp("hostile")
    config = fit_config("AE", root)
    config["trainer"]["max_steps"] = 2
    config_path = root / "config_in.yaml"
    config_path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(config_path)])
    ckpt = root / "ae" / "version_0" / "checkpoints" / "last.ckpt"
    good = root / "good_folder"
    load_method(ckpt).save_pretrained(good)
    genuine = read_checkpoint(ckpt)
    return {
        "root": root, "ckpt": ckpt, "config": config_path,
        "checkpoints": list(corpus.write_checkpoints(genuine, ckpt.parent)),
        "folders": list(corpus.write_model_folders(good, root)),
        "run_configs": list(corpus.write_run_configs(ckpt.parent.parent / "config.yaml", root)),
        "configs": list(corpus.write_configs(config, root)),
    }


@pytest.fixture
def payload(tmp_path, monkeypatch) -> Path:
    """The marker module in the current folder (also on sys.path) and in site-packages."""
    marker = tmp_path / "imported"
    monkeypatch.setenv("GENAE_PAYLOAD_MARKER", str(marker))
    files = corpus.plant_payload(tmp_path, marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    for file in files:
        file.unlink(missing_ok=True)
    assert not marker.exists(), f"{PAYLOAD} was imported"
    assert PAYLOAD not in sys.modules and "this" not in sys.modules


def outcome(load: Callable[[], object], capsys) -> str | None:
    """None when ``load`` succeeded, else its error message (stderr for a CLI's exit)."""
    try:
        load()
    except SystemExit as exit_:
        return f"{exit_.code} {capsys.readouterr().err}"
    except Exception as err:  # noqa: BLE001 - every failure must explain itself
        return f"{type(err).__name__}: {err}"
    return None


def check(case: Hostile, message: str | None, named: Path) -> None:
    if message is None:
        assert case.name.removeprefix("weights_") in IGNORED, f"{case.name} loaded silently"
        return
    assert str(named) in message or named.name in message, message
    assert case.expect.strip("'") in message, message
    assert "Traceback" not in message


def checkpoint_loaders(world: dict, out: Path) -> dict[str, Callable[[Path], object]]:
    config = str(world["config"])
    return {
        "load_method": load_method,
        "load_from_checkpoint": AE.load_from_checkpoint,
        "sample": lambda p: main(["sample", "--ckpt_path", str(p), "--n", "4", "--out",
                                  str(out / "s.png"), "--device", "cpu"]),
        "evaluate": lambda p: main(["evaluate", "--ckpt_path", str(p), "--no_fid", "true",
                                    "--num_samples", "16", "--out", str(out / "e.json")]),
        "traverse": lambda p: main(["traverse", "--ckpt_path", str(p), "--steps", "3",
                                    "--out", str(out / "t.png"), "--device", "cpu"]),
        "fit": lambda p: main(["fit", "--config", config, "--ckpt_path", str(p)]),
        "predict": lambda p: main(["predict", "--config", config, "--ckpt_path", str(p)]),
    }


@pytest.mark.parametrize("case", corpus.CHECKPOINT_CASES)
def test_every_checkpoint_loader_refuses_the_crafted_checkpoint(world, payload, case, tmp_path,
                                                                 capsys) -> None:
    hostile = next(h for h in world["checkpoints"] if h.name == case)
    for name, loader in checkpoint_loaders(world, tmp_path).items():
        message = outcome(lambda: loader(hostile.path), capsys)  # noqa: B023
        if name in ("fit", "predict") and message is None:
            continue  # a resume compares names (nothing is built from the file); see below
        check(hostile, message, hostile.path)


def test_a_resume_refuses_a_checkpoint_whose_classes_differ(world, payload, capsys) -> None:
    """fit/predict --ckpt_path compare the file's class names with the config's, by name."""
    loaders = checkpoint_loaders(world, payload.parent)
    for case in ("method_in_payload", "method_this", "backbone_class", "datamodule_class_path",
                 "huge_image_shape", "huge_latent_dim", "tensor_beyond_storage",
                 "hparams_not_mapping"):
        hostile = next(h for h in world["checkpoints"] if h.name == case)
        # predict reads no data settings from the checkpoint, so only fit compares them
        for command in ("fit",) if case == "datamodule_class_path" else ("fit", "predict"):
            message = outcome(lambda: loaders[command](hostile.path), capsys)  # noqa: B023
            assert message is not None, f"{command} resumed from {case}"
            assert str(hostile.path) in message, message


def test_from_pretrained_refuses_every_crafted_folder(world, payload, capsys) -> None:
    for hostile in world["folders"]:
        message = outcome(lambda: from_pretrained(hostile.path), capsys)  # noqa: B023
        check(hostile, message, hostile.path)


def test_a_run_config_cannot_choose_the_data_class(world, payload, capsys, tmp_path) -> None:
    genuine = world["ckpt"]
    for hostile in world["run_configs"]:
        ckpt = hostile.path.parent / "checkpoints" / "last.ckpt"
        ckpt.write_bytes(genuine.read_bytes())
        # (genae sample needs no data, so it does not read config.yaml)
        for command in (["evaluate", "--no_fid", "true", "--num_samples", "16"],
                        ["traverse", "--steps", "3", "--out", str(tmp_path / "t.png")]):
            message = outcome(lambda: main([*command, "--ckpt_path", str(ckpt),  # noqa: B023
                                            "--device", "cpu"]), capsys)
            assert message is not None, f"{command[0]} used {hostile.name}"
            assert "config.yaml" in message and hostile.expect in message, message


def test_a_config_file_cannot_choose_a_class(world, payload, capsys) -> None:
    for hostile in world["configs"]:
        for command in ("fit", "validate"):
            message = outcome(lambda: main([command, "--config", str(hostile.path)]),  # noqa: B023
                              capsys)
            assert message is not None, f"{command} ran {hostile.name}"
            assert str(hostile.path) in message and hostile.expect in message, message


def test_a_trusted_class_loads_only_when_handed_over(world, payload) -> None:
    """The user's own classes are named explicitly: trusted= in Python (here a subclass of AE)."""
    class MyAE(AE):
        """A method of the user's own, defined outside genae-lightning."""

    MyAE.__qualname__ = MyAE.__name__ = "MyAE"
    checkpoint = read_checkpoint(world["ckpt"])
    checkpoint["genae"]["method"] = f"{MyAE.__module__}.MyAE"
    path = payload.parent / "mine.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="MyAE'.*trusted=\\[YourClass\\]"):
        load_method(path)
    assert type(load_method(path, trusted=[MyAE])) is MyAE


def test_the_cli_run_from_the_payloads_folder_imports_nothing(world, tmp_path) -> None:
    """`python -m genae_lightning.cli sample` run where a model.pt names the module beside it."""
    marker = tmp_path / "imported"
    (tmp_path / f"{PAYLOAD}.py").write_text(corpus.PAYLOAD_SOURCE)
    hostile = next(h for h in world["folders"] if h.name == "weights_method_in_payload")
    (tmp_path / "model.pt").write_bytes((hostile.path / "model.pt").read_bytes())
    env = {**os.environ, "GENAE_PAYLOAD_MARKER": str(marker)}
    for command in (["sample", "--ckpt_path", "model.pt", "--n", "4"],
                    ["evaluate", "--ckpt_path", "model.pt", "--data", "Digits", "--no_fid",
                     "true"]):
        done = subprocess.run([sys.executable, "-m", "genae_lightning.cli", *command],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        assert f"'{PAYLOAD}.AE'" in done.stderr and "model.pt" in done.stderr, done.stderr[-2000:]
        assert not marker.exists(), f"{PAYLOAD} was imported by {command[0]}"
    code = f"from genae_lightning import from_pretrained; from_pretrained('{hostile.path}')"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and f"'{PAYLOAD}.AE'" in done.stderr
    assert not marker.exists()


def test_the_corpus_is_what_it_claims(world) -> None:
    """Every crafted checkpoint differs from the genuine one (a corpus of copies proves nothing)."""
    genuine = world["ckpt"].read_bytes()
    assert all(h.path.read_bytes() != genuine for h in world["checkpoints"])
    assert len(world["checkpoints"]) == len(corpus.CHECKPOINT_CASES) >= 14
    assert json.loads((world["root"] / "config_not_object" / "config.json").read_text()) == [1, 2]


def test_the_command_line_trusts_only_what_trust_names(world, payload, capsys, tmp_path) -> None:
    my_ae = corpus.users_own_method()
    checkpoint = read_checkpoint(world["ckpt"])
    checkpoint["genae"]["method"] = f"{my_ae.__module__}.MyAE"
    path = world["ckpt"].parent / "mine_cli.ckpt"
    torch.save(checkpoint, path)
    sample = ["sample", "--ckpt_path", str(path), "--n", "4", "--out", str(tmp_path / "s.png"),
              "--device", "cpu"]
    message = outcome(lambda: main(sample), capsys)
    assert message is not None and "tests.hostile.corpus.MyAE" in message and "--trust" in message
    main([*sample, "--trust", "tests.hostile.corpus.MyAE"])
    assert (tmp_path / "s.png").is_file()
