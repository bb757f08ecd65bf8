"""Names written before a module moved still name their class; nothing new is imported."""

import importlib
import json

import pytest
import torch

from genae_lightning.autoencoder.constraints import AugmentedLagrangian, Penalty
from genae_lightning.checkpoints.io import SafeCheckpointIO
from genae_lightning.checkpoints.pretrained import from_pretrained, save_pretrained
from genae_lightning.trust import MOVED_MODULES, UntrustedClassError, check_names, lookup
from tests.checkpoints.test_pretrained import assert_same_outputs, trained  # noqa: F401


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_each_moved_module_is_gone_and_its_new_place_exists(old) -> None:
    importlib.import_module(MOVED_MODULES[old])
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_a_config_naming_old_paths_gets_the_new_ones() -> None:
    config = {"model": {"init_args": {
        "constraint": {"class_path": "genae_lightning.methods.constraints.Penalty"},
        "other": {"class_path": "genae_lightning.methods.AugmentedLagrangian"}}},
        "trainer": {"plugins": [{"class_path": "genae_lightning.checkpoint_io.SafeCheckpointIO"}]}}
    checked = check_names(config, where="old.yaml", key="",
                          kinds=("constraint", "checkpoint_io"))
    init = checked["model"]["init_args"]
    assert init["constraint"]["class_path"] == "genae_lightning.autoencoder.constraints.Penalty"
    assert init["other"]["class_path"] == ("genae_lightning.autoencoder.constraints"
                                           ".AugmentedLagrangian")
    assert checked["trainer"]["plugins"][0]["class_path"] == "genae_lightning.checkpoints.io" \
        ".SafeCheckpointIO"


def test_an_old_path_names_only_its_own_class() -> None:
    assert lookup("genae_lightning.methods.constraints.Penalty", ("constraint",), where="f",
                  key="k") is Penalty
    assert lookup("genae_lightning.methods.Penalty", ("constraint",), where="f",
                  key="k") is Penalty
    assert lookup("genae_lightning.checkpoint_io.SafeCheckpointIO", ("checkpoint_io",),
                  where="f", key="k") is SafeCheckpointIO
    for wrong in ("genae_lightning.methods.constraints.AugmentedLagrangianX",
                  "genae_lightning.methods.ae.Penalty",  # a module that does not export it
                  "genae_lightning.checkpoint.Penalty"):
        with pytest.raises(UntrustedClassError):
            lookup(wrong, ("constraint",), where="f", key="k")
    assert AugmentedLagrangian is not Penalty


def test_a_folder_written_before_the_move_loads(trained, tmp_path) -> None:  # noqa: F811
    folder = save_pretrained(trained, tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    constraint = config["model"]["init_args"]["constraint"]
    assert constraint["class_path"] == "genae_lightning.autoencoder.constraints.Penalty"
    constraint["class_path"] = "genae_lightning.methods.constraints.Penalty"
    (folder / "config.json").write_text(json.dumps(config))
    loaded = from_pretrained(folder)
    assert isinstance(loaded.constraint, Penalty) and loaded.constraint.nu == 0.5
    assert_same_outputs(trained, loaded, torch.rand(3, 1, 8, 8))
