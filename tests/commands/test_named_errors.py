"""Every error about a file or an argument names it (issue 25, section 4).

Each test gives a command one bad file or argument and checks that the message says which one,
what was expected and how to fix it.
"""

import json
import re
import struct

import pytest
import torch

from genae_lightning import cli
from genae_lightning.backbones import MLPBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE
from tests.conftest import REPO, tiny_trainer

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def named(path) -> str:
    """``path`` as a regular expression matching it literally."""
    return re.escape(str(path))


@pytest.fixture
def ckpt(tmp_path):
    """A tiny AE checkpoint of 8x8 images inside a run folder (``run/checkpoints/last.ckpt``)."""
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=MLPBackbone(hidden=[16]))
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, datamodule=SyntheticImages(image_shape=(1, 8, 8), num_samples=40,
                                                  batch_size=4))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    trainer.save_checkpoint(path)
    return path


BAD_YAML = {
    "syntax": ("trainer:\n  max_steps: [1\nmodel: x\n", r"line 3, column 6: not valid YAML"),
    "python tag": ("seed_everything: 0\nmodel: !!python/object/apply:os.system ['echo hi']\n",
                   r"line 2, column 8: .*python/object/apply:os.system.*plain YAML"),
    "empty": ("# only a comment\n", r"is empty \(no YAML, only blanks or comments\)"),
}


@pytest.mark.parametrize("case", list(BAD_YAML))
def test_a_bad_yaml_config_names_the_file_and_the_line(case, tmp_path, monkeypatch) -> None:
    text, message = BAD_YAML[case]
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "my_config.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=rf"^{named(config)}.*{message}"):
        cli.main(["fit", "--config", str(config), "--trainer.max_steps", "1"])
    # the same file as a run's saved config.yaml, read by sample/evaluate/traverse
    run_config = tmp_path / "run" / "config.yaml"
    run_config.parent.mkdir(exist_ok=True)
    run_config.write_text(text)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(exist_ok=True)
    ckpt.write_bytes(b"never read: the config is read first")
    for command in ("evaluate", "traverse"):
        with pytest.raises(ValueError, match=rf"^{named(run_config)}.*{message}"):
            cli.main([command, "--ckpt_path", str(ckpt)])


def wandb_file(path, *records: bytes) -> None:
    """An offline W&B run file holding ``records`` (serialized protobufs), one chunk each."""
    chunks = b"".join(struct.pack("<IHB", 0, len(r), 1) + r for r in records)
    path.write_bytes(b":W&B\x00\x00\x01" + chunks)


def test_report_names_the_malformed_file_and_its_key(tmp_path) -> None:
    from wandb.proto import wandb_internal_pb2

    csv_run = tmp_path / "csv" / "version_0"
    csv_run.mkdir(parents=True)
    (csv_run / "metrics.csv").write_text("step,fid/recon\n9,12.5\n19,oops\n")
    with pytest.raises(ValueError, match=r"metrics.csv, line 3: 'fid/recon' is 'oops', not a num"):
        cli.main(["report", str(tmp_path / "csv"), "--out", str(tmp_path / "r")])

    evaluation = tmp_path / "evaluation.json"
    for metrics, message in (([1, 2], r"'metrics' holds a JSON list, expected the object"),
                             ({"fid/gmm": "high"}, r"'metrics.fid/gmm' is 'high', not a number")):
        evaluation.write_text(json.dumps({"name": "AE", "metrics": metrics}))
        with pytest.raises(ValueError, match=rf"^{named(evaluation)}: {message}"):
            cli.main(["report", str(evaluation), "--out", str(tmp_path / "r")])

    run_file = tmp_path / "wandb" / "run-x.wandb"
    run_file.parent.mkdir()
    history = wandb_internal_pb2.Record()
    item = history.history.item.add()
    item.key, item.value_json = "fid/recon", "{not json"
    wandb_file(run_file, history.SerializeToString())
    with pytest.raises(ValueError, match=rf"^{named(run_file)}: the value of 'fid/recon' is not "):
        cli.main(["report", str(tmp_path / "wandb"), "--out", str(tmp_path / "r")])
    wandb_file(run_file, b"\xff\xff\xff")
    with pytest.raises(ValueError, match=rf"^{named(run_file)}: the record ending at byte 17 is "):
        cli.main(["report", str(tmp_path / "wandb"), "--out", str(tmp_path / "r")])


def test_a_folder_as_ckpt_path_is_named_and_its_last_ckpt_suggested(ckpt, tmp_path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = ckpt.parent.parent
    message = (rf"'{named(run)}' is a folder, not a checkpoint: .*did you mean "
               rf"{named(ckpt)} ")
    for argv in (["sample", "--ckpt_path", str(run), "--device", "cpu"],
                 ["traverse", "--ckpt_path", str(run)],
                 ["evaluate", "--ckpt_path", str(run)],
                 ["fit", "--config", QUICKSTART, "--trainer.max_steps", "1",
                  "--ckpt_path", str(run)]):
        with pytest.raises(IsADirectoryError, match=message):
            cli.main(argv)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IsADirectoryError, match=rf"'{named(empty)}' is a folder, not a checkpo"):
        cli.main(["sample", "--ckpt_path", str(empty)])


def test_a_bad_device_index_or_command_lists_what_is_valid(ckpt, tmp_path, capsys) -> None:
    for command in ("sample", "evaluate", "traverse"):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--ckpt_path", str(ckpt), "--device", "foo"])
        assert exit_.value.code == 2
        assert "--device 'foo' is not a device: expected cpu, cuda, cuda:N (N: a GPU index), " \
               "mps, or auto" in " ".join(capsys.readouterr().err.split()), command

    with pytest.raises(SystemExit) as exit_:
        cli.main(["traverse", "--ckpt_path", str(ckpt), "--device", "cpu", "--data",
                  "SyntheticImages", "--data.image_shape", "[1, 8, 8]", "--data.num_samples",
                  "40", "--index", "99999", "--out", str(tmp_path / "t.png")])
    assert exit_.value.code == 2
    assert "--index 99999 is out of range: the test split of SyntheticImages has 40 images, so " \
           "it takes 0 to 39" in " ".join(capsys.readouterr().err.split())

    with pytest.raises(SystemExit) as exit_:
        cli.main(["fitt"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'fitt'; did you mean fit?" in err
    assert ("the commands are: fit, validate, test, predict, sample, evaluate, export, "
            "report, train-features, traverse, configs") in err


def test_missing_inputs_are_errors_naming_them(ckpt, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "classifier.pt"
    with pytest.raises(FileNotFoundError, match=rf"--fid_feature '{named(missing)}' is neither "
                                                r"'inception' nor an existing file"):
        cli.main(["fit", "--config", QUICKSTART, "--trainer.max_steps", "1",
                  "--trainer.callbacks+=genae_lightning.callbacks.GenerativeMetrics",
                  "--fid_feature", str(missing)])
    with pytest.raises(FileNotFoundError, match=rf"--fid_feature '{named(missing)}' is neither "):
        cli.main(["evaluate", "--ckpt_path", str(ckpt), "--device", "cpu", "--data",
                  "SyntheticImages", "--data.image_shape", "[1, 8, 8]", "--fid_feature",
                  str(missing)])
    with pytest.raises(ValueError, match=r"genae predict needs the trained weights, and no "
                                         r"--ckpt_path was given.*--ckpt_path <log dir>/"):
        cli.main(["predict", "--config", QUICKSTART])


def test_an_empty_ckpt_path_or_a_folder_as_config_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (["sample", "--ckpt_path", ""],
                 ["fit", "--config", QUICKSTART, "--trainer.max_steps", "1", "--ckpt_path", ""]):
        with pytest.raises(FileNotFoundError, match="--ckpt_path is empty: pass the .ckpt file"):
            cli.main(argv)
    with pytest.raises(IsADirectoryError, match=rf"config '{named(tmp_path)}' is a folder, not a "):
        cli.main(["fit", "--config", str(tmp_path)])


def test_a_run_config_that_is_no_mapping_is_named(tmp_path) -> None:
    from genae_lightning.commands.checkpoints import saved_data

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"config.yaml: the run's config holds a YAML list"):
        saved_data(tmp_path / "checkpoints" / "last.ckpt")
