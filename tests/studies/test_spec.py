"""Study files: the bundled ones load; mistakes are named with file, key and fix."""

from pathlib import Path

import pytest
import yaml

from genae_lightning.studies.spec import (
    StudyError,
    available_studies,
    load_study,
    resolve_study,
)

BUNDLED = ("tiny", "table1_mnist", "table1_fashion", "budget_mnist", "budget_fashion")
VALID = {
    "configs": {"ae": "ae_mnist", "ae_l2": {"config": "ae_l2_mnist"}},
    "seeds": [0, 1],
    "selection": {"metric": "cfid/gmm",
                  "grid": {"ae_l2": {"model.init_args.l2_weight": [0.1, 1.0]}}},
    "budgets": {"max_steps": [10]},
    "evaluation": {"feature": None},
}


def write(tmp_path: Path, data: dict, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_(**changes) -> dict:
    data = {**VALID}
    for key, value in changes.items():
        data[key] = value
    return data


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_study_loads(name) -> None:
    assert name in available_studies()
    study = load_study(name)
    assert study.name == name and study.methods and study.seeds
    assert study.selection_seed in study.seeds


def test_a_valid_file_loads_with_its_defaults(tmp_path) -> None:
    study = load_study(write(tmp_path, VALID))
    assert study.name == "mine" and study.selection_seed == 0 and study.selection_mode == "min"
    assert study.selection_steps == 10 and study.metrics == ("cfid/gmm",)
    assert [len(m.grid) for m in study.methods] == [1, 2]
    assert study.wandb == {"project": "genae-lightning"}
    assert study.datasets[0].label is None


def test_grids_are_products_and_unions(tmp_path) -> None:
    grid = [{"model.init_args.l2_weight": [0.1, 1.0], "model.init_args.latent_dim": [8, 16]},
            {"model.init_args.l2_weight": 5.0}]
    study = load_study(write(tmp_path, with_(selection={"metric": "m", "grid": {"ae": grid}})))
    assert len(study.method("ae").grid) == 5


@pytest.mark.parametrize(("changes", "messages"), [
    ({"seeds": "zero"}, ["seeds", "an integer >= 0", "'zero'"]),
    ({"seedz": [0]}, ["seedz", "did you mean 'seeds'"]),
    ({"configs": {"ae": "ae_mnsit"}}, ["configs.ae", "ae_mnist", "genae configs"]),
    ({"overrides": {"trainer.max_steps": 5}}, ["overrides.trainer.max_steps", "budgets:"]),
    ({"overrides": {"--lr": 5}}, ["overrides.--lr", "dotted setting"]),
    ({"overrides": {"data": "os.system"}}, ["os.system", "overrides.data", "Nothing was imported"]),
    ({"selection": {"metric": "m", "grid": {"vae": {"a.b": [1]}}}},
     ["selection.grid.vae", "a label of configs"]),
    ({"selection": {"metric": "m", "grid": {"ae": {"a.b": []}}}}, ["selection.grid.ae.a.b"]),
    ({"selection": {"metric": "m", "mode": "lowest"}}, ["selection.mode", "min or max"]),
    ({"budgets": {"max_steps": [10], "equal_time": {"reference": ["injflow"]}}},
     ["budgets.equal_time.reference", "injflow"]),
    ({"evaluation": {"samplers": ["flow"]}}, ["evaluation.samplers", "'flow'"]),
    ({"paper": {"ae": {"cfid/gmm": "12"}}}, ["paper.ae.cfid/gmm", "a number"]),
])
def test_mistakes_name_file_key_and_fix(tmp_path, changes, messages) -> None:
    path = write(tmp_path, with_(**changes))
    with pytest.raises(StudyError) as raised:
        load_study(path)
    text = str(raised.value)
    assert str(path) in text
    for message in messages:
        assert message in text, text


def test_a_missing_key_and_bad_yaml_are_named(tmp_path) -> None:
    data = {k: v for k, v in VALID.items() if k != "selection"}
    with pytest.raises(StudyError, match="`selection:` is missing"):
        load_study(write(tmp_path, data))
    bad = tmp_path / "bad.yaml"
    bad.write_text("configs: [ae\n")
    with pytest.raises(StudyError, match="line"):
        load_study(bad)


def test_an_unknown_study_name_lists_close_ones() -> None:
    with pytest.raises(FileNotFoundError, match="Did you mean table1_mnist"):
        resolve_study("table1_mnst")
