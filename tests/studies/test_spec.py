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


@pytest.mark.parametrize(("evaluation", "messages"), [
    ({"feature": "inception", "feature_extractor_weights_path": 5},
     ["evaluation.feature_extractor_weights_path", "a non-empty string", "5"]),
    ({"feature": "classifier.pt", "feature_extractor_weights_path": "w.pth"},
     ["evaluation.feature_extractor_weights_path", "`feature: inception`", "'w.pth'",
      "'classifier.pt'"]),
])
def test_a_bad_inception_weights_key_is_named(tmp_path, evaluation, messages) -> None:
    path = write(tmp_path, with_(evaluation=evaluation))
    with pytest.raises(StudyError) as raised:
        load_study(path)
    for message in [str(path), *messages]:
        assert message in str(raised.value), str(raised.value)


def test_the_inception_weights_file_is_read_but_not_part_of_the_trials(tmp_path) -> None:
    """A local weights file (offline machines) is where a file lies here, as the data root: the
    trials, their ids and records are those of the study without it."""
    from genae_lightning.studies.plan import Selection, selection_trials, test_trials

    plain = load_study(write(tmp_path, with_(evaluation={"feature": "inception"}), "plain"))
    weights = {"feature": "inception", "feature_extractor_weights_path": "w/inception.pth"}
    study = load_study(write(tmp_path, with_(evaluation=weights), "plain"))
    assert study.evaluation.feature_extractor_weights_path == "w/inception.pth"
    assert [t.id for t in selection_trials(study)] == [t.id for t in selection_trials(plain)]
    trial = test_trials(study, {("ae", None): Selection("ae", None, (), 0)})[0]
    assert trial.evaluation.feature_extractor_weights_path is None
    assert "w/inception.pth" not in str(trial.to_json())


def test_missing_evaluation_files_are_named_before_a_study_runs(tmp_path, monkeypatch) -> None:
    """Reading a study checks no file (a report reads anywhere); check_files, which `genae
    study run` calls before any trial, names the study file, the key, the value and the fix."""
    from genae_lightning.studies.spec import check_files

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, with_(evaluation={"feature": "features/missing.pt"}))
    study = load_study(path)  # reads
    with pytest.raises(StudyError) as raised:
        check_files(study)
    for message in (str(path), "evaluation.feature:", "'features/missing.pt'", "no such file",
                    str(tmp_path), "genae train-features", "feature: null"):
        assert message in str(raised.value), str(raised.value)
    weights = {"feature": "inception", "feature_extractor_weights_path": "missing.pth"}
    path = write(tmp_path, with_(evaluation=weights))
    with pytest.raises(StudyError) as raised:
        check_files(load_study(path))
    for message in (str(path), "evaluation.feature_extractor_weights_path:",
                    "an existing Inception weights file", "'missing.pth'",
                    "weights-inception-2015-12-05-6726825d.pth", "remove the key"):
        assert message in str(raised.value), str(raised.value)
    (tmp_path / "missing.pth").write_bytes(b"")
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "missing.pt").write_bytes(b"")
    check_files(load_study(path))
    check_files(load_study(write(tmp_path, with_(evaluation={"feature": "features/missing.pt"}))))
