"""save_pretrained never loses a good model: atomic writes, no foreign files, no symlinks,
an escaped model card; killed saves leave no debris behind (issue 25, section 3)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from genae_lightning.backbones import MLPBackbone
from genae_lightning.checkpoints.io import SafeCheckpointIO
from genae_lightning.checkpoints.pretrained import from_pretrained, save_pretrained
from genae_lightning.methods import AE


def tiny(seed: int = 0) -> AE:
    torch.manual_seed(seed)
    return AE(image_shape=(1, 8, 8), latent_dim=2, backbone=MLPBackbone(hidden=[8])).eval()


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def same_folder(folder: Path, before: dict[str, bytes]) -> None:
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.fixture
def good(tmp_path) -> tuple[Path, dict[str, bytes]]:
    folder = save_pretrained(tiny(), tmp_path / "good", dataset="Digits")
    return folder, {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_save_that_fails_midway_keeps_the_previous_model(good, monkeypatch) -> None:
    folder, before = good

    synced = []

    def disk_full(fd: int) -> None:  # the weights reach the disk, the next file does not
        synced.append(fd)
        if len(synced) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained(tiny(1), folder, dataset="Digits")
    monkeypatch.undo()
    same_folder(folder, before)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(from_pretrained(folder)(x), tiny()(x))


def test_a_value_that_cannot_be_serialised_changes_nothing(good) -> None:
    folder, before = good
    with pytest.raises(TypeError, match="metrics must map names to finite numbers"):
        save_pretrained(tiny(1), folder, metrics={"fid": object()})
    with pytest.raises(TypeError, match="metrics must map names to finite numbers"):
        save_pretrained(tiny(1), folder, metrics={"fid": float("nan")})  # not JSON
    unsaveable = tiny(1)
    unsaveable.hparams["backbone"] = object()  # would be written as its repr, never read back
    with pytest.raises(TypeError, match="hyper_parameters.backbone is a object"):
        save_pretrained(unsaveable, folder)
    with pytest.raises(TypeError, match="dataset must be a string"):
        save_pretrained(tiny(1), folder, dataset=Path("MNIST"))
    same_folder(folder, before)


def test_an_interrupted_save_leaves_the_old_model_loadable(good) -> None:
    """A process killed while writing (kill -9 after the temporary files) changes nothing."""
    folder, before = good
    code = (
        "import os, signal\n"
        "from tests.checkpoints.test_sharing_never_loses import tiny\n"
        "from genae_lightning.checkpoints.pretrained import save_pretrained\n"
        "real = os.fsync\n"
        "def killed(fd):\n"  # killed once the weights are on disk
        "    real(fd); os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fsync = killed\n"
        f"save_pretrained(tiny(1), {str(folder)!r}, dataset='Digits')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                          capture_output=True, timeout=120)
    assert done.returncode == -9
    leftovers = [p.name for p in folder.glob(".*.tmp")]
    assert leftovers and all(p.startswith(".model.safetensors.") for p in leftovers)
    for name, data in before.items():
        assert (folder / name).read_bytes() == data
    from_pretrained(folder)  # still loads
    with pytest.warns(UserWarning, match="temporary file of an interrupted save"):
        save_pretrained(tiny(1), folder, dataset="Digits")
    assert not list(folder.glob(".*.tmp"))


def test_files_it_did_not_write_are_kept_unless_overwrite(tmp_path) -> None:
    for name in ("README.md", "config.json", "model.safetensors"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_text("mine\n")
        with pytest.raises(FileExistsError, match=f"{name}' exists and was not written by "
                                                  "genae-lightning; pass overwrite=True"):
            save_pretrained(tiny(), folder)
        assert (folder / name).read_text() == "mine\n"
        assert not (folder / "model.safetensors").exists() or name == "model.safetensors"
        save_pretrained(tiny(), folder, overwrite=True)
        from_pretrained(folder)
    folder = save_pretrained(tiny(), tmp_path / "again")
    save_pretrained(tiny(1), folder)  # its own files are replaced without overwrite=True


def test_it_never_writes_through_a_symlink(tmp_path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").symlink_to(victim)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is a symlink"):
            save_pretrained(tiny(), folder, overwrite=overwrite)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("dataset", ["MNIST\nlicense: other", "x: y", "'quoted'", "a\n---\nb",
                                     "#comment", "- list", "{flow: map}", "ünïcødé ✓"])
def test_the_card_front_matter_parses_back_to_exactly_the_keys_written(tmp_path,
                                                                       dataset) -> None:
    folder = save_pretrained(tiny(), tmp_path / "m", dataset=dataset, license="mit",
                             metrics={"fid/gmm": 12.5, "knn/acc": 0.9})
    meta = front_matter((folder / "README.md").read_text())
    assert set(meta) == {"library_name", "tags", "pipeline_tag", "license", "datasets",
                         "model-index"}
    assert meta["datasets"] == [dataset] and meta["license"] == "mit"
    assert meta["library_name"] == "genae-lightning"
    results = meta["model-index"][0]["results"][0]
    assert {m["type"]: m["value"] for m in results["metrics"]} == {"fid/gmm": 12.5,
                                                                    "knn/acc": 0.9}
    assert json.loads((folder / "config.json").read_text())["dataset"] == dataset


def test_a_killed_checkpoint_write_leaves_debris_that_the_next_save_removes(tmp_path) -> None:
    io = SafeCheckpointIO()
    target = tmp_path / "last.ckpt"
    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"half")
    with pytest.warns(UserWarning, match="temporary file of an interrupted checkpoint write"):
        io.save_checkpoint({"state_dict": {}}, target)
    assert not stale.exists() and target.is_file()
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]


def test_from_pretrained_names_a_file_or_a_misspelt_folder(tmp_path, monkeypatch) -> None:
    folder = save_pretrained(tiny(), tmp_path / "my-injflow")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotADirectoryError, match="that is a file, not a folder.*load_method"):
        from_pretrained(str(folder / "model.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"no such folder \(did you mean my-injflow\?\)"):
        from_pretrained("./my-injflw")
    (tmp_path / "outputs").mkdir()
    with pytest.raises(FileNotFoundError, match=r"\('outputs/model'\): no such folder"):
        from_pretrained("outputs/model")  # one slash, but a local path: not a Hub id
