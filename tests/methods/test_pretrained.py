"""Pretrained folders: save_pretrained / from_pretrained round trip, model card, Hub transfers."""

import json
import sys
import types

import pytest
import torch

import genae_lightning.methods.ae
from genae_lightning.backbones import MLPBackbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.data import Digits
from genae_lightning.methods import AE, InjFlow, pretrained
from genae_lightning.methods.pretrained import (
    from_pretrained,
    push_to_hub,
    save_pretrained,
)
from tests.conftest import tiny_trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> InjFlow:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]))
    trainer = tiny_trainer(tmp_path_factory.mktemp("fit"), max_steps=3,
                           callbacks=[FitLatentPrior(n_components=2)])
    trainer.fit(model, datamodule=Digits(batch_size=32))
    return model.eval()


def outputs(model, x):
    with torch.no_grad():
        return (model.reconstruct(x),
                model.sample(5, prior="gmm", generator=torch.Generator().manual_seed(1)))


def test_a_local_folder_round_trip_gives_the_same_outputs(trained, tmp_path) -> None:
    folder = save_pretrained(trained, tmp_path / "injflow", dataset="Digits",
                             metrics={"fid/gmm": 12.5, "knn/acc": 0.9})
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.pt", "README.md"}
    loaded = from_pretrained(folder)
    assert type(loaded) is InjFlow and not loaded.training
    assert set(loaded.posthoc_priors) == {"gaussian", "gmm"}
    x = torch.rand(6, 1, 8, 8)
    for ours, theirs in zip(outputs(trained, x), outputs(loaded, x), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == "genae_lightning.methods.injflow.InjFlow"
    assert config["hyper_parameters"]["latent_dim"] == 4
    assert config["posthoc_priors"] == ["gaussian", "gmm"] and config["dataset"] == "Digits"
    card = (folder / "README.md").read_text()
    assert "# InjFlow on Digits" in card and "Relaxed Injective Probability Flow" in card
    assert "| `fid/gmm` | 12.5 |" in card and 'prior="gmm"' in card


def test_a_baseline_card_says_so_and_lists_no_metrics(tmp_path) -> None:
    model = AE(image_shape=(1, 8, 8), latent_dim=3)
    card = (save_pretrained(model, tmp_path) / "README.md").read_text()
    assert "baseline of genae-lightning" in card and "None recorded" in card
    assert "none (fit them with `FitLatentPrior`)" in card


def test_a_folder_that_is_not_pretrained_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected config.json and model.pt"):
        from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="expected a folder written by save_pretrained"):
        from_pretrained(tmp_path / "missing" / "deeper" / "folder")


def test_the_mixin_loads_its_own_class_only(tmp_path, monkeypatch) -> None:
    class SharedAE(AE):
        """An AE subclass: from_pretrained checks the folder holds this very class."""

    SharedAE.__module__, SharedAE.__qualname__ = "genae_lightning.methods.ae", "SharedAE"
    monkeypatch.setattr(genae_lightning.methods.ae, "SharedAE", SharedAE, raising=False)
    model = SharedAE(image_shape=(1, 8, 8), latent_dim=3)
    model.save_pretrained(tmp_path / "shared")
    assert type(SharedAE.from_pretrained(tmp_path / "shared")) is SharedAE
    save_pretrained(AE(image_shape=(1, 8, 8), latent_dim=3), tmp_path / "plain")
    with pytest.raises(TypeError, match="holds a AE, not a SharedAE"):
        SharedAE.from_pretrained(tmp_path / "plain")


class FakeHub(types.ModuleType):
    """Stands in for huggingface_hub: uploads copy into, downloads read from, a folder."""

    def __init__(self, root):
        super().__init__("huggingface_hub")
        self.root, self.calls = root, []
        hub = self

        class HfApi:
            def __init__(self, token=None):
                hub.calls.append(("HfApi", token))

            def create_repo(self, repo_id, private, exist_ok):
                hub.calls.append(("create_repo", repo_id, private, exist_ok))

            def upload_folder(self, folder_path, repo_id, commit_message):
                import shutil
                shutil.copytree(folder_path, hub.root / repo_id)
                hub.calls.append(("upload_folder", repo_id, commit_message))
                return f"https://huggingface.co/{repo_id}/commit/1"

        self.HfApi = HfApi

    def snapshot_download(self, repo_id, revision=None, cache_dir=None):
        self.calls.append(("snapshot_download", repo_id, revision))
        return str(self.root / repo_id)


def test_hub_push_and_pull_go_through_huggingface_hub(trained, tmp_path, monkeypatch) -> None:
    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    url = push_to_hub(trained, "someone/injflow-digits", dataset="Digits", token="t")
    assert url == "https://huggingface.co/someone/injflow-digits/commit/1"
    assert ("create_repo", "someone/injflow-digits", False, True) in hub.calls
    monkeypatch.chdir(tmp_path)  # no local folder of that name: the id goes to the Hub
    loaded = from_pretrained("someone/injflow-digits", revision="main")
    assert ("snapshot_download", "someone/injflow-digits", "main") in hub.calls
    x = torch.rand(3, 1, 8, 8)
    for ours, theirs in zip(outputs(trained, x), outputs(loaded, x), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_without_huggingface_hub_the_error_names_the_extra(trained, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install \"genae-lightning\[hub\]\""):
        pretrained.push_to_hub(trained, "someone/x")
    with pytest.raises(ImportError, match=r"genae-lightning\[hub\]"):
        from_pretrained("someone/not-a-local-folder")
