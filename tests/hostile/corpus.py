"""A corpus of hostile files: crafted checkpoints, model folders, configs and run folders.

Every file names the marker module ``PAYLOAD`` (or a module with a side effect, such as ``this``)
somewhere a loader reads a class, or claims an impossible size, or is damaged. The marker module
is put on ``sys.path`` (the current folder and site-packages) by :func:`plant_payload`; importing
it writes a file, so a test proves it was never imported.
"""

import collections
import copy
import json
import site
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

PAYLOAD = "genae_payload"
PAYLOAD_SOURCE = """
import pathlib, os
pathlib.Path(os.environ["GENAE_PAYLOAD_MARKER"]).write_text(__file__)
class AE: pass
class Backbone: pass
class DataModule: pass
def instantiate(*args, **kwargs): return None
"""


@dataclass
class Hostile:
    """One crafted file: what it is, where it lies, which loaders read it."""

    name: str
    kind: str  # "checkpoint" | "folder" | "run_config" | "config"
    path: Path
    expect: str  # a piece of the refusal's message (besides the file's name)


def plant_payload(folder: Path, marker: Path) -> list[Path]:
    """Write the marker module into ``folder`` and into site-packages; returns the files."""
    files = [folder / f"{PAYLOAD}.py"]
    site_dirs = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    if site_dirs:
        files.append(site_dirs[0] / f"{PAYLOAD}.py")
    for file in files:
        file.write_text(PAYLOAD_SOURCE)
    return files


class _BadTensor:
    """Pickles as a tensor whose shape needs more elements than its storage holds."""

    def __init__(self, tensor: torch.Tensor, size: tuple[int, ...]) -> None:
        self.storage = torch.storage.TypedStorage(wrap_storage=tensor.untyped_storage(),
                                                  dtype=tensor.dtype, _internal=True)
        self.size = size

    def __reduce__(self) -> Any:
        stride = tuple(int(torch.tensor(self.size[i + 1:]).prod()) for i in range(len(self.size)))
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.size, stride, False, collections.OrderedDict()))


def _checkpoint_edits() -> dict[str, tuple[Callable[[dict], None], str]]:
    """name -> (edit of a genuine checkpoint dict, a piece of the expected refusal)."""

    def setter(*keys: str, value: Any) -> Callable[[dict], None]:
        def edit(ckpt: dict) -> None:
            target = ckpt
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        return edit

    def bad_tensor(ckpt: dict) -> None:
        name, tensor = next(iter(ckpt["state_dict"].items()))
        ckpt["state_dict"][name] = _BadTensor(tensor.contiguous(), (10_000, 10_000))

    return {
        "method_in_payload": (setter("genae", "method", value=f"{PAYLOAD}.AE"),
                              f"'{PAYLOAD}.AE'"),
        "method_this": (setter("genae", "method", value="this.X"), "'this.X'"),
        "method_in_genae_namespace": (
            setter("genae", "method", value=f"genae_lightning.methods.{PAYLOAD}.AE"),
            f"'genae_lightning.methods.{PAYLOAD}.AE'"),
        "backbone_class": (setter("hyper_parameters", "backbone", "class_path",
                                  value=f"{PAYLOAD}.Backbone"), f"'{PAYLOAD}.Backbone'"),
        "optimizer_class": (setter("hyper_parameters", "optimizer",
                                   value={"class_path": f"{PAYLOAD}.Opt", "init_args": {}}),
                            f"'{PAYLOAD}.Opt'"),
        "hparams_class_path": (setter("hyper_parameters", "_class_path", value=f"{PAYLOAD}.AE"),
                               f"'{PAYLOAD}.AE'"),
        "instantiator": (setter("hyper_parameters", "_instantiator",
                                value=f"{PAYLOAD}.instantiate"), ""),
        "datamodule_class_path": (setter("datamodule_hyper_parameters", "_class_path",
                                         value=f"{PAYLOAD}.DataModule"), ""),
        "huge_image_shape": (setter("hyper_parameters", "image_shape",
                                    value=[1, 100_000, 100_000]), "image_shape"),
        "huge_latent_dim": (setter("hyper_parameters", "latent_dim", value=10**9), "latent_dim"),
        "latent_dim_not_int": (setter("hyper_parameters", "latent_dim", value=[4]),
                               "latent_dim"),
        "huge_width": (setter("hyper_parameters", "backbone", "init_args", "hidden",
                              value=[10**9]), "hidden"),
        "hparams_not_mapping": (setter("hyper_parameters", value=[1, 2]), "hyper_parameters"),
        "tensor_beyond_storage": (bad_tensor, "corrupt"),
    }


CHECKPOINT_CASES = list(_checkpoint_edits())


def write_checkpoints(genuine: dict, folder: Path) -> Iterator[Hostile]:
    """The crafted checkpoints, each derived from ``genuine``, written into ``folder``."""
    for name, (edit, expect) in _checkpoint_edits().items():
        ckpt = copy.deepcopy(genuine)
        edit(ckpt)
        path = folder / f"{name}.ckpt"
        torch.save(ckpt, path)
        yield Hostile(name, "checkpoint", path, expect)


def _format_1(good: Path) -> tuple[dict, dict]:
    """The good folder as genae-lightning 0.2 wrote it: (config.json, model.pt's checkpoint)."""
    import safetensors.torch

    config = json.loads((good / "config.json").read_text())
    method = config["model"]["class_path"]
    checkpoint = {"state_dict": safetensors.torch.load_file(good / "model.safetensors"),
                  "hyper_parameters": config["model"]["init_args"],
                  "genae": {"method": method, "version": config["genae_lightning_version"],
                            "posthoc_priors": sorted(config["posthoc_priors"])}}
    legacy = {"format": 1, "method": method, "weights": "model.pt",
              "genae_lightning_version": config["genae_lightning_version"],
              "hyper_parameters": config["model"]["init_args"],
              "posthoc_priors": sorted(config["posthoc_priors"])}
    return legacy, checkpoint


def write_model_folders(good: Path, root: Path) -> Iterator[Hostile]:
    """Crafted pretrained folders: copies of the good folder ``good`` with one part changed.

    ``config_*``: its ``config.json`` (format 2) edited, ``safetensors_*``: its weights damaged;
    ``weights_*``: a folder of format 1 (``model.pt``, still read) with a crafted checkpoint.
    """
    def copy_of(name: str) -> Path:
        folder = root / name
        folder.mkdir()
        for file in good.iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
        return folder

    config = json.loads((good / "config.json").read_text())
    folder = copy_of("config_not_object")
    (folder / "config.json").write_text("[1, 2]")
    yield Hostile("config_not_object", "folder", folder, "config.json")
    folder = copy_of("config_not_json")
    (folder / "config.json").write_text("{not json")
    yield Hostile("config_not_json", "folder", folder, "config.json")
    model = config["model"]
    edits = {
        "method_payload": ({**model, "class_path": f"{PAYLOAD}.AE"}, f"{PAYLOAD}.AE"),
        "backbone_payload": ({**model, "init_args": {**model["init_args"], "backbone": {
            "class_path": f"{PAYLOAD}.Backbone", "init_args": {}}}}, f"{PAYLOAD}.Backbone"),
        "optimizer_payload": ({**model, "init_args": {**model["init_args"], "optimizer": {
            "class_path": f"{PAYLOAD}.Opt", "init_args": {}}}}, f"{PAYLOAD}.Opt"),
        "huge_latent_dim": ({**model, "init_args": {**model["init_args"],
                                                    "latent_dim": 10**9}}, "latent_dim"),
        "init_not_mapping": ({**model, "init_args": [1, 2]}, "init_args"),
    }
    for name, (edited, expect) in edits.items():
        folder = copy_of(f"config_{name}")
        (folder / "config.json").write_text(json.dumps({**config, "model": edited}))
        yield Hostile(f"config_{name}", "folder", folder, expect)
    folder = copy_of("config_prior_payload")
    priors = {**config["posthoc_priors"], "gmm": {"class_path": f"{PAYLOAD}.AE", "tensors": {}}}
    (folder / "config.json").write_text(json.dumps({**config, "posthoc_priors": priors}))
    yield Hostile("config_prior_payload", "folder", folder, "posthoc_priors.gmm")
    folder = copy_of("safetensors_truncated")
    data = (good / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    yield Hostile("safetensors_truncated", "folder", folder, "safetensors")
    legacy, weights = _format_1(good)
    for name, (edit, expect) in _checkpoint_edits().items():
        if name in ("datamodule_class_path",):
            continue
        folder = root / f"weights_{name}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(legacy))
        ckpt = copy.deepcopy(weights)
        edit(ckpt)
        torch.save(ckpt, folder / "model.pt")
        yield Hostile(f"weights_{name}", "folder", folder, expect)


def write_run_configs(run_config: Path, root: Path) -> Iterator[Hostile]:
    """Run folders whose ``config.yaml`` names the payload as the data (read by sample & co)."""
    genuine = yaml.safe_load(run_config.read_text())
    cases = {
        "data_class_path": {**genuine, "data": {"class_path": f"{PAYLOAD}.DataModule",
                                                "init_args": {}}},
        "data_short_string": {**genuine, "data": f"{PAYLOAD}.DataModule"},
        "data_this": {**genuine, "data": {"class_path": "this.DataModule"}},
    }
    for name, config in cases.items():
        folder = root / f"run_{name}"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        yield Hostile(name, "run_config", folder / "config.yaml", PAYLOAD if "this" not in name
                      else "this.DataModule")
    folder = root / "run_python_tag"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"data: !!python/object/apply:{PAYLOAD}.instantiate []\n")
    yield Hostile("python_tag", "run_config", folder / "config.yaml", "config.yaml")


def write_configs(genuine: dict, root: Path) -> Iterator[Hostile]:
    """``--config`` files naming the payload where LightningCLI takes a class."""
    def with_(path: tuple[str, ...], value: Any) -> dict:
        config = copy.deepcopy(genuine)
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return config

    cases = {
        "config_model": with_(("model", "class_path"), f"{PAYLOAD}.AE"),
        "config_model_string": with_(("model",), f"{PAYLOAD}.AE"),
        "config_backbone": with_(("model", "init_args", "backbone", "class_path"),
                                 f"{PAYLOAD}.Backbone"),
        "config_callback": with_(("trainer", "callbacks"),
                                 [{"class_path": f"{PAYLOAD}.Callback"}]),
        "config_data": with_(("data", "class_path"), f"{PAYLOAD}.DataModule"),
    }
    for name, config in cases.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        yield Hostile(name, "config", path, PAYLOAD)
    # a value that is the path of a file of settings, which jsonargparse would read as a config
    parts = root / "parts"
    parts.mkdir(exist_ok=True)
    part_cases = {
        "config_model_part": (("model",), {"class_path": f"{PAYLOAD}.AE"}),
        "config_trainer_part": (("trainer",), {**genuine["trainer"],
                                               "callbacks": [{"class_path": f"{PAYLOAD}.Cb"}]}),
        "config_callback_part": (("trainer", "callbacks"), [{"class_path": f"{PAYLOAD}.Cb"}]),
        "config_backbone_part": (("model", "init_args", "backbone"),
                                 {"class_path": f"{PAYLOAD}.Backbone"}),
    }
    for name, (key, part) in part_cases.items():
        part_path = parts / f"{name}.txt"  # any suffix: jsonargparse reads the file as YAML
        part_path.write_text(yaml.safe_dump(part))
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(with_(key, str(part_path))))
        yield Hostile(name, "config", path, str(part_path))


def users_own_method() -> type:
    """A method subclass of the user's own (defined outside genae-lightning)."""
    from genae_lightning.methods import AE

    return globals().get("MyAE") or globals().setdefault(
        "MyAE", type("MyAE", (AE,), {"__module__": __name__}))
