"""Configs composed from parts: every bundled config composes and names allowed classes, each
method has its config part, bundled names resolve, and a run's outputs land under
`trainer.default_root_dir`."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from genae_lightning.cli import main
from genae_lightning.commands.config_files import (
    available_configs,
    compose,
    config_dir,
    expand_config_args,
    merge,
    read_yaml,
    resolve_config,
)
from genae_lightning.methods import METHODS
from genae_lightning.trust import CONFIG_KINDS, UntrustedClassError, check_names, lookup
from tests.conftest import REPO

# the experiments: every bundled config but the W&B sweeps (a sweep's file is no run config)
EXPERIMENTS = sorted(name for name in available_configs() if not name.startswith("sweeps/"))
PAPER = [name for name in EXPERIMENTS if name != "quickstart"]  # quickstart: CSV only, no FID
TOY = {"beta_vae_h_moons", "beta_dpvae_h_moons"}  # 2-D points: no FID, no image grids


def _classes(items: object) -> list[str]:
    items = items if isinstance(items, list) else [items]
    return [item["class_path"].rpartition(".")[2] for item in items]


def callback_key(callback: dict) -> str:
    """``<class name>:<init_args as JSON>`` (key order does not matter)."""
    init_args = json.dumps(callback.get("init_args", {}), sort_keys=True)
    return f"{callback['class_path'].rpartition('.')[2]}:{init_args}"


def test_the_bundled_configs_are_the_repository_configs() -> None:
    """What `genae configs` lists is the files of configs/: a new file is a new config."""
    assert config_dir() == REPO / "configs"
    files = {p.stem: p for p in (REPO / "configs").glob("*.yaml")}
    files |= {f"sweeps/{p.stem}": p for p in (REPO / "configs" / "sweeps").glob("*.yaml")}
    assert available_configs() == dict(sorted(files.items()))
    assert {"quickstart", "injflow_mnist", "sweeps/injflow_mnist_sweep"} <= set(files)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_config_composes_and_names_only_allowed_classes(name) -> None:
    """A config (new ones included) composes, names only classes the allow-list has (what
    `genae fit` checks before anything is imported), trains a registered method on a
    DataModule, and describes itself in its first comment line (`genae configs`)."""
    path = resolve_config(name)
    assert path.read_text().startswith("# "), (
        f"{path.name}: start with '# {name}: <what it is>' (`genae configs` shows it)")
    config = compose(path)
    checked = check_names(config, where=str(path), key="", kinds=CONFIG_KINDS)
    model = lookup(checked["model"]["class_path"], ("method",), where=name, key="model")
    assert model in METHODS.values(), f"{name}: {model} is not a method of genae_lightning.methods"
    lookup(checked["data"]["class_path"], ("data",), where=name, key="data")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_has_its_config_part_and_an_experiment(name) -> None:
    """configs/model/ holds each method's part, and some experiment trains it."""
    cls = METHODS[name]
    parts = [p.name for p in sorted((REPO / "configs" / "model").glob("*.yaml"))
             if lookup(read_yaml(p)["model"]["class_path"], ("method",), where=p.name,
                       key="model") is cls]
    assert parts, f"no configs/model/*.yaml names {name}: add its part (docs/architecture.md)"
    trained = [n for n in EXPERIMENTS if lookup(compose(resolve_config(n))["model"]["class_path"],
                                                ("method",), where=n, key="model") is cls]
    assert trained, f"no configs/*.yaml trains {name}"


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_logs_csv_and_wandb_and_runs_the_metrics(name) -> None:
    config = compose(resolve_config(name))
    trainer = config["trainer"]
    assert trainer["default_root_dir"] == f"outputs/{name}"
    assert _classes(trainer["logger"]) == ["GenaeCSVLogger", "GenaeWandbLogger"]
    for logger in trainer["logger"]:
        assert "save_dir" not in logger.get("init_args", {}), "save_dir must follow the root"
    assert trainer["logger"][0]["init_args"]["name"] == name
    callbacks = _classes(trainer["callbacks"])
    if name not in TOY:
        assert {"GenerativeMetrics", "ImageLogger", "FitLatentPrior"} <= set(callbacks)
        assert callbacks.index("FitLatentPrior") < callbacks.index("GenerativeMetrics")
    constraint = config["model"]["init_args"].get("constraint")
    if config["model"]["class_path"].endswith("InjFlow"):  # the sweep sets the penalty's nu
        assert constraint["class_path"].endswith("Penalty") and "nu" in constraint["init_args"]


def test_generative_metrics_everywhere_share_one_setting() -> None:
    settings = {
        callback_key(c)
        for name in PAPER
        for c in compose(resolve_config(name))["trainer"]["callbacks"]
        if c["class_path"].endswith(("GenerativeMetrics", "ImageLogger"))
    }
    assert len(settings) == 2, settings


@pytest.mark.parametrize("value", ["injflow_cifar", "injflow_cifar.yaml",
                                   "configs/injflow_cifar.yaml"])
def test_a_bare_name_finds_the_bundled_config(value, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config(value) == REPO / "configs" / "injflow_cifar.yaml"


def test_the_sweep_resolves_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = REPO / "configs" / "sweeps" / "injflow_mnist_sweep.yaml"
    assert resolve_config("injflow_mnist_sweep") == sweep
    assert resolve_config("sweeps/injflow_mnist_sweep.yaml") == sweep
    command = yaml.safe_load(sweep.read_text())["command"]
    config = command[command.index("--config") + 1]
    assert resolve_config(config) == REPO / "configs" / "injflow_mnist.yaml"


def test_an_existing_path_wins_over_a_bundled_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("quickstart.yaml").write_text("seed_everything: 3\n")
    assert resolve_config("quickstart.yaml") == Path("quickstart.yaml")
    assert expand_config_args(["fit", "--config", "quickstart.yaml"])[-1] == "quickstart.yaml"


def test_an_unknown_name_lists_close_matches() -> None:
    with pytest.raises(FileNotFoundError, match="Close matches: injflow_cifar") as err:
        resolve_config("injflow_cifr")
    assert "genae configs" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no nothing_like_it.yaml"):
        main(["fit", "--config", "nothing_like_it"])


def test_expand_config_args_composes_and_passes_the_rest_through() -> None:
    argv = ["fit", "--config=injflow_mnist", "-c", "quickstart", "--model.init_args.eta", "1"]
    out = expand_config_args(argv)
    assert yaml.safe_load(out[1].removeprefix("--config=")) == compose(
        REPO / "configs" / "injflow_mnist.yaml")
    assert out[2:] == ["-c", str(REPO / "configs" / "quickstart.yaml"),
                       "--model.init_args.eta", "1"]
    inline = "trainer: {max_steps: 3}"
    assert expand_config_args(["--config", inline]) == ["--config", inline]


def test_merge_merges_mappings_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched


def test_parts_nest_and_the_config_comes_last(tmp_path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "base.yaml").write_text("trainer: {max_steps: 1, logger: "
                                                  "{class_path: x.CSVLogger}}\nx: 1\n")
    (tmp_path / "parts" / "more.yaml").write_text("defaults: [base.yaml]\nx: 2\ny: 2\n")
    (tmp_path / "exp.yaml").write_text("defaults: [parts/more.yaml]\ny: 3\n")
    assert compose(tmp_path / "exp.yaml") == {
        "trainer": {"max_steps": 1, "default_root_dir": "outputs/exp",
                    "logger": {"class_path": "x.CSVLogger", "init_args": {"name": "exp"}}},
        "x": 2, "y": 3}


def test_bad_defaults_are_errors(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("defaults: [missing.yaml]\n")
    with pytest.raises(FileNotFoundError, match="part 'missing.yaml' of `defaults` not found"):
        compose(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("defaults: b.yaml\n")
    with pytest.raises(ValueError, match="must be a list of part files"):
        compose(tmp_path / "b.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "d.yaml").write_text("defaults: [list.yaml]\n")
    with pytest.raises(ValueError, match="list.yaml must be a mapping, got list"):
        compose(tmp_path / "d.yaml")
    (tmp_path / "c.yaml").write_text("defaults: [c.yaml]\n")
    with pytest.raises(ValueError, match="nest deeper than"):
        compose(tmp_path / "c.yaml")


def test_a_part_names_classes_the_allow_list_checks_before_any_import(tmp_path) -> None:
    """The composed text is checked whole: a part's class is refused, its module not imported
    (jsonargparse's own ``model: part.yaml`` would open the part after the check)."""
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "model.yaml").write_text(
        "model:\n  class_path: genae_never_imported_payload.AE\n")
    (tmp_path / "exp.yaml").write_text("defaults: [parts/model.yaml]\nseed_everything: 0\n")
    with pytest.raises(UntrustedClassError, match=r"exp\.yaml: model\.class_path names "
                                                  "'genae_never_imported_payload.AE'"):
        expand_config_args(["fit", "--config", str(tmp_path / "exp.yaml")])
    assert "genae_never_imported_payload" not in sys.modules

def test_genae_configs_lists_names_with_descriptions(capsys) -> None:
    main(["configs"])
    lines = capsys.readouterr().out.splitlines()
    quickstart = next(line for line in lines if line.startswith("quickstart "))
    assert "InjFlow-ln (objective 9)" in quickstart
    assert any(line.startswith("sweeps/injflow_mnist_sweep ") for line in lines)
    assert sum(line.startswith(("injflow_", "swae_", "ae_")) for line in lines) >= 15
    main(["configs", "--path", "injflow_mnist_sweep"])
    assert capsys.readouterr().out.strip().endswith("sweeps/injflow_mnist_sweep.yaml")


def test_print_config_shows_the_composed_config(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "injflow_mnist", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "defaults" not in printed
    assert printed["model"]["class_path"].endswith("InjFlow")
    assert printed["model"]["init_args"]["latent_dim"] == 32
    assert printed["model"]["init_args"]["backbone"]["init_args"]["preset"] == "mnist"
    assert printed["trainer"]["default_root_dir"] == "outputs/injflow_mnist"


TINY = """\
# tiny: a composed config that trains in seconds
defaults: [{paper}]
trainer:
  max_steps: 2
  accelerator: cpu
  enable_progress_bar: false
  num_sanity_val_steps: 0
  log_every_n_steps: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {{save_last: true}}
    - class_path: genae_lightning.callbacks.FitLatentPrior
      init_args: {{n_components: 2}}
    - class_path: genae_lightning.callbacks.GenerativeMetrics
      init_args: {{num_samples: 8, knn_train_samples: 16, batch_size: 8, progress: false}}
    - class_path: genae_lightning.callbacks.ImageLogger
      init_args: {{n: 4}}
model:
  class_path: genae_lightning.methods.AE
  init_args:
    latent_dim: 2
    backbone:
      class_path: genae_lightning.backbones.MLPBackbone
      init_args: {{hidden: [8]}}
data:
  class_path: genae_lightning.data.SyntheticImages
  init_args: {{image_shape: [1, 8, 8], num_samples: 24, batch_size: 4}}
"""


def test_a_run_lands_under_default_root_dir(tmp_path, monkeypatch) -> None:
    work, root = tmp_path / "work", tmp_path / "root"
    work.mkdir()
    monkeypatch.chdir(work)
    paper = REPO / "configs" / "trainer" / "paper.yaml"
    (work / "tiny.yaml").write_text(TINY.format(paper=paper))
    main(["fit", "--config", "tiny.yaml", "--trainer.default_root_dir", str(root)])
    assert sorted(p.name for p in work.iterdir()) == ["tiny.yaml"]  # nothing under outputs/
    run = root / "tiny" / "version_0"
    for name in ("metrics.csv", "config.yaml", "hparams.yaml", "recon.png", "samples_gmm.png",
                 "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    assert list((root / "wandb").glob("offline-run-*")), "the W&B run is not under the root"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "defaults" not in saved
    assert [logger["init_args"]["save_dir"] for logger in saved["trainer"]["logger"]] == [
        str(root), str(root)]
    assert "knn/acc" in (run / "metrics.csv").read_text().splitlines()[0]


def test_a_config_is_described_by_the_first_sentence_of_its_comment(tmp_path):
    from genae_lightning.commands.configs import describe

    path = tmp_path / "ae_l2_x.yaml"
    path.write_text("# ae_l2_x: AE+L2: an l2 penalty; the paper\n# searches l2_weight.\n"
                    "# Second sentence.\nseed_everything: 0\n")
    assert describe(path) == "AE+L2: an l2 penalty; the paper searches l2_weight."
    path.write_text("# " + "word " * 60 + "\nseed_everything: 0\n")
    assert len(describe(path)) <= 160 and describe(path).endswith(" ...")
