"""Pretrained folders: save_pretrained / from_pretrained round trip, model card, Hub transfers."""

import functools
import json
import math
import pickle
import sys
import types

import pytest
import safetensors.torch
import torch
import yaml
from torch import nn

import genae_lightning.methods.ae
from genae_lightning.backbones import MLPBackbone
from genae_lightning.backbones.base import Backbone
from genae_lightning.callbacks import FitLatentPrior
from genae_lightning.checkpoints import pretrained
from genae_lightning.checkpoints.pretrained import (
    from_pretrained,
    push_to_hub,
    save_pretrained,
)
from genae_lightning.checkpoints.reading import CorruptCheckpointError
from genae_lightning.data import Digits
from genae_lightning.methods import AE, METHODS, VAE, InjFlow, Penalty
from genae_lightning.priors import DecoupledPrior
from genae_lightning.trust import UntrustedClassError
from tests.conftest import tiny_trainer

FILES = {"config.json", "model.safetensors", "README.md"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> InjFlow:
    torch.manual_seed(0)
    model = InjFlow(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[32]),
                    constraint=Penalty(nu=0.5),
                    optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.5))
    trainer = tiny_trainer(tmp_path_factory.mktemp("fit"), max_steps=3,
                           callbacks=[FitLatentPrior(n_components=2)])
    trainer.fit(model, datamodule=Digits(batch_size=32))
    return model.eval()


def outputs(model, x):
    with torch.no_grad():
        return (model.reconstruct(x),
                model.sample(5, prior="gmm", generator=torch.Generator().manual_seed(1)))


def assert_same_outputs(ours, theirs, x) -> None:
    for a, b in zip(outputs(ours, x), outputs(theirs, x), strict=True):
        assert torch.equal(a, b)


def folder_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_local_folder_round_trip_gives_the_same_outputs(trained, tmp_path) -> None:
    folder = save_pretrained(trained, tmp_path / "injflow", dataset="Digits",
                             metrics={"fid/gmm": 12.5, "knn/acc": 0.9})
    assert {p.name for p in folder.iterdir()} == FILES
    loaded = from_pretrained(folder)
    assert type(loaded) is InjFlow and not loaded.training
    assert set(loaded.posthoc_priors) == {"gaussian", "gmm"}
    assert_same_outputs(trained, loaded, torch.rand(6, 1, 8, 8))
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["class_path"] == "genae_lightning.methods.injflow.InjFlow"
    assert config["model"]["init_args"]["latent_dim"] == 4
    assert set(config["posthoc_priors"]) == {"gaussian", "gmm"} and config["dataset"] == "Digits"
    card = (folder / "README.md").read_text()
    assert "# InjFlow on Digits" in card and "Relaxed Injective Probability Flow" in card
    assert "| `fid/gmm` | 12.5 |" in card and 'prior="gmm"' in card


def test_config_json_holds_the_whole_init_as_class_configs(trained, tmp_path) -> None:
    """Backbone, constraint and optimizer with their arguments: nothing lost, no object reprs."""
    text = (save_pretrained(trained, tmp_path / "m") / "config.json").read_text()
    assert " object at 0x" not in text
    init = json.loads(text)["model"]["init_args"]
    assert init["backbone"]["class_path"] == "genae_lightning.backbones.mlp.MLPBackbone"
    assert init["backbone"]["init_args"]["hidden"] == [32]
    assert init["constraint"] == {"class_path": "genae_lightning.autoencoder.constraints.Penalty",
                                  "init_args": {"nu": 0.5, "scale": 1000.0,
                                                "reference_steps": None}}
    assert init["optimizer"]["class_path"] == "torch.optim.sgd.SGD"
    assert init["optimizer"]["init_args"] == {"lr": 0.05, "momentum": 0.5}
    loaded = from_pretrained(tmp_path / "m")
    assert isinstance(loaded.constraint, Penalty) and loaded.constraint.nu == 0.5
    optimizer = loaded.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == 0.5


def test_every_file_is_byte_identical_across_saves_and_after_a_reload(trained, tmp_path) -> None:
    first = save_pretrained(trained, tmp_path / "a", dataset="Digits", license="mit",
                            metrics={"fid/gmm": 12.5})
    second = save_pretrained(trained, tmp_path / "b", dataset="Digits", license="mit",
                             metrics={"fid/gmm": 12.5})
    assert folder_bytes(first) == folder_bytes(second)
    again = save_pretrained(from_pretrained(first), tmp_path / "c", dataset="Digits",
                            license="mit", metrics={"fid/gmm": 12.5})
    assert folder_bytes(first) == folder_bytes(again)


def test_a_folder_loads_without_any_pickle(trained, tmp_path, monkeypatch) -> None:
    folder = save_pretrained(trained, tmp_path / "m")

    def refused(*args, **kwargs):
        raise AssertionError("a pickle was read")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"),
                         (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, refused)
    loaded = from_pretrained(folder)
    monkeypatch.undo()
    assert_same_outputs(trained, loaded, torch.rand(3, 1, 8, 8))


def test_the_safetensors_file_holds_the_post_hoc_priors(trained, tmp_path) -> None:
    folder = save_pretrained(trained, tmp_path / "m")
    tensors = safetensors.torch.load_file(folder / "model.safetensors")
    gmm = trained.posthoc_priors["gmm"]
    assert torch.equal(tensors["posthoc_priors.gmm.means"], gmm.means)
    assert torch.equal(tensors["posthoc_priors.gmm.scale_trils"], gmm.scale_trils)
    assert torch.equal(tensors["posthoc_priors.gaussian.mean"], trained.posthoc_priors[
        "gaussian"].mean)
    assert set(tensors) == set(trained.state_dict())
    priors = json.loads((folder / "config.json").read_text())["posthoc_priors"]
    assert priors["gmm"]["class_path"] == "genae_lightning.priors.gmm.GaussianMixture"
    assert priors["gmm"]["tensors"]["posthoc_priors.gmm.means"] == [2, 4]
    assert priors["gaussian"]["class_path"] == "genae_lightning.priors.gaussian.FullCovGaussian"


def test_local_folders_need_no_huggingface_hub(trained, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # any import of it fails
    folder = save_pretrained(trained, tmp_path / "m")
    assert_same_outputs(trained, from_pretrained(folder), torch.rand(2, 1, 8, 8))


def write_format_1(model, folder) -> None:
    """A folder as genae-lightning 0.2's save_pretrained wrote it: config.json and model.pt."""
    folder.mkdir()
    checkpoint = {"state_dict": dict(model.state_dict()),
                  "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, folder / "model.pt")
    config = {"format": 1, "method": "genae_lightning.methods.injflow.InjFlow",
              "genae_lightning_version": checkpoint["genae"]["version"],
              "hyper_parameters": dict(model.hparams), "posthoc_priors": ["gaussian", "gmm"],
              "dataset": None, "license": None, "metrics": {}, "weights": "model.pt"}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def test_a_folder_of_format_1_still_loads_and_is_replaced_by_a_new_save(trained,
                                                                         tmp_path) -> None:
    folder = tmp_path / "old"
    write_format_1(trained, folder)
    assert_same_outputs(trained, from_pretrained(folder), torch.rand(3, 1, 8, 8))
    save_pretrained(from_pretrained(folder), folder)
    assert {p.name for p in folder.iterdir()} == FILES  # the old model.pt is gone
    assert_same_outputs(trained, from_pretrained(folder), torch.rand(3, 1, 8, 8))


class TinyBackbone(Backbone):
    """A backbone of the user's own: one hidden layer of ``hidden`` units."""

    def __init__(self, hidden: int = 16) -> None:
        self.hidden = hidden

    def encoder(self, image_shape, out_features: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(image_shape), self.hidden),
                             nn.ELU(), nn.Linear(self.hidden, out_features))

    def decoder(self, latent_dim: int, image_shape) -> nn.Module:
        return nn.Sequential(nn.Linear(latent_dim, math.prod(image_shape)),
                             nn.Unflatten(1, tuple(image_shape)), nn.Sigmoid())


def test_your_own_backbone_loads_only_when_trusted(tmp_path) -> None:
    torch.manual_seed(0)
    model = AE(image_shape=(1, 8, 8), latent_dim=3, backbone=TinyBackbone(hidden=7)).eval()
    folder = save_pretrained(model, tmp_path / "m")
    backbone = json.loads((folder / "config.json").read_text())["model"]["init_args"]["backbone"]
    assert backbone == {"class_path": f"{__name__}.TinyBackbone", "init_args": {"hidden": 7}}
    with pytest.raises(UntrustedClassError, match="TinyBackbone.*trusted=\\[YourClass\\]"):
        from_pretrained(folder)
    loaded = from_pretrained(folder, trusted=[TinyBackbone])
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model(x), loaded(x))


def test_your_own_encoder_and_decoder_are_passed_again(tmp_path) -> None:
    torch.manual_seed(0)

    def modules():
        return (nn.Sequential(nn.Flatten(), nn.Linear(64, 6)),
                nn.Sequential(nn.Linear(3, 64), nn.Unflatten(1, (1, 8, 8))))

    model = VAE(image_shape=(1, 8, 8), latent_dim=3, encoder=modules()[0],
                decoder=modules()[1]).eval()
    folder = save_pretrained(model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_networks"] == {"encoder": "torch.nn.modules.container.Sequential",
                                         "decoder": "torch.nn.modules.container.Sequential"}
    assert "encoder=MyEncoder(...), decoder=MyDecoder(...)" in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match=r"your own encoder .* no encoder or decoder= was given.*"
                                         r"from_pretrained\("):
        from_pretrained(folder)
    encoder, decoder = modules()  # fresh modules: the folder's weights go into them
    loaded = from_pretrained(folder, encoder=encoder, decoder=decoder)
    assert loaded.encoder is encoder
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


def test_an_object_that_config_json_cannot_hold_is_refused_before_writing(tmp_path) -> None:
    model = AE(image_shape=(1, 8, 8), latent_dim=3)
    model.hparams["callback"] = object()
    with pytest.raises(TypeError, match="hyperparameter hyper_parameters.callback is a object"):
        save_pretrained(model, tmp_path / "m")
    assert not (tmp_path / "m" / "config.json").exists()


def test_a_damaged_or_mismatched_folder_is_named(trained, tmp_path) -> None:
    folder = save_pretrained(trained, tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="model.safetensors' is not a readable "
                                                     "safetensors file"):
        from_pretrained(folder)
    folder = save_pretrained(trained, tmp_path / "n")
    config = json.loads((folder / "config.json").read_text())
    del config["posthoc_priors"]["gmm"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"lists the post-hoc priors \['gaussian'\] but "
                                         r"model.safetensors holds tensors of \['gaussian', "
                                         r"'gmm'\]"):
        from_pretrained(folder)
    config["model"]["class_path"] = "os.system"
    config["posthoc_priors"] = json.loads(
        (tmp_path / "m" / "config.json").read_text())["posthoc_priors"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedClassError, match="genae.method names 'os.system'"):
        from_pretrained(folder)


def test_a_baseline_card_says_so_and_lists_no_metrics(tmp_path) -> None:
    model = AE(image_shape=(1, 8, 8), latent_dim=3)
    card = (save_pretrained(model, tmp_path) / "README.md").read_text()
    assert "baseline of genae-lightning" in card and "None recorded" in card
    assert "none (fit them with `FitLatentPrior`)" in card


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_card_cites_the_paper_the_method_class_names(name, tmp_path) -> None:
    cls = METHODS[name]
    card = pretrained.model_card({"model": {"class_path": f"{cls.__module__}.{name}"},
                                  "posthoc_priors": [], "genae_lightning_version": "0"},
                                 cls.paper)
    line = next(line for line in card.splitlines() if line.startswith("- Paper: "))
    assert line == f"- Paper: {cls.paper or pretrained.BASELINE}"


def test_a_dpvae_card_cites_the_dpvae_paper(tmp_path) -> None:
    """dpVAE is no class of its own: a VAE built with a DecoupledPrior (whose ``paper`` it is)."""
    model = VAE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[8]),
                prior=DecoupledPrior(flow_layers=1, flow_hidden=4))
    card = (save_pretrained(model, tmp_path) / "README.md").read_text()
    assert "- Paper: Bhalodia, Lee & Elhabian, *dpVAEs: Fixing Sample Generation" in card
    plain = VAE(image_shape=(1, 8, 8), latent_dim=4, backbone=MLPBackbone(hidden=[8]))
    assert pretrained.paper_of(plain) is None
    assert pretrained.paper_of(InjFlow(image_shape=(1, 8, 8), latent_dim=4)) == InjFlow.paper


def test_the_card_gives_the_hub_its_metadata_and_evaluated_metrics(trained, tmp_path) -> None:
    card = (save_pretrained(trained, tmp_path / "m", dataset="MNIST", license="mit",
                            metrics={"fid/gmm": 12.5, "knn/acc": 0.9}) / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n", 2)[1])
    assert meta["library_name"] == "genae-lightning" and meta["license"] == "mit"
    assert meta["datasets"] == ["MNIST"] and "InjFlow" in meta["tags"]
    assert meta["pipeline_tag"] == "unconditional-image-generation"
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "MNIST", "type": "MNIST"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"fid/gmm": 12.5, "knn/acc": 0.9}
    no_dataset = (save_pretrained(trained, tmp_path / "n", metrics={"fid/gmm": 12.5})
                  / "README.md").read_text()
    assert "model-index" not in no_dataset and "| `fid/gmm` | 12.5 |" in no_dataset


def test_huggingface_hub_reads_the_card_metrics(trained, tmp_path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    card = (save_pretrained(trained, tmp_path / "m", dataset="MNIST", license="mit",
                            metrics={"fid/gmm": 12.5}) / "README.md").read_text()
    data = hub.ModelCard(card).data
    assert data.library_name == "genae-lightning" and data.license == "mit"
    [result] = data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("fid/gmm", 12.5,
                                                                              "MNIST")


def test_a_folder_that_is_not_pretrained_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="expected config.json and model.safetensors"):
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
    url = push_to_hub(trained, "someone/injflow-digits", dataset="Digits", token="t",
                      license="mit")
    assert url == "https://huggingface.co/someone/injflow-digits/commit/1"
    assert ("create_repo", "someone/injflow-digits", False, True) in hub.calls
    assert {p.name for p in (tmp_path / "hub" / "someone" / "injflow-digits").iterdir()} == FILES
    monkeypatch.chdir(tmp_path)  # no local folder of that name: the id goes to the Hub
    loaded = from_pretrained("someone/injflow-digits", revision="main")
    assert ("snapshot_download", "someone/injflow-digits", "main") in hub.calls
    assert_same_outputs(trained, loaded, torch.rand(3, 1, 8, 8))


def test_without_huggingface_hub_the_error_names_the_extra(trained, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install \"genae-lightning\[hub\]\""):
        pretrained.push_to_hub(trained, "someone/x")
    with pytest.raises(ImportError, match=r"genae-lightning\[hub\]"):
        from_pretrained("someone/not-a-local-folder")
