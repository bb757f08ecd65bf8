"""Every bundled study (configs/studies/*.yaml): it loads, and it asks for what genae measures.

test_spec.py checks a fixed list of studies and the format's errors; this file follows the
folder, so a study added there is checked without editing a list: its test metrics and
selection metric are keys ``genae evaluate`` writes with the study's FID features and samplers,
its paper values name metrics the study measures (an FID of another feature counts: the paper's
Inception ``fid/prior`` beside our classifier ``cfid/prior``), and its FID feature file exists.
Marked slow (about a second per config): ``genae fit`` parses every config's trial arguments,
and each override of the study lands in the parsed config.
"""

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from genae_lightning.metrics.fid import split_fid_key
from genae_lightning.studies.definition import Study
from genae_lightning.studies.plan import FINAL_CHECKPOINT, Budget, make_trial
from genae_lightning.studies.spec import available_studies, load_study

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted(available_studies())


def evaluated_keys(study: Study) -> set[str]:
    """The metric keys ``genae evaluate`` writes for the study's evaluation settings.

    ``val/rec_sse`` and ``knn/acc`` always (labelled data), and with FID features the FID of the
    reconstructions and of each sampler: ``fid/`` for Inception, ``cfid/`` for a
    ``genae train-features`` classifier (``genae_lightning.metrics.fid.fid_prefix``).
    """
    keys = {"val/rec_sse", "knn/acc"}
    feature = study.evaluation.feature
    if feature is not None:
        prefix = "fid" if feature == "inception" else "cfid"
        keys |= {f"{prefix}/{kind}" for kind in ("recon", *study.evaluation.samplers)}
    return keys


def kind(key: str) -> str:
    """An FID key's kind (``recon``, ``gmm``, ...), any other key itself."""
    fid = split_fid_key(key)
    return key if fid is None else f"FID {fid[1]}"


def test_the_folder_has_the_bundled_studies() -> None:
    for name in ("tiny", "table1_mnist", "table1_fashion", "table1_mnist_paper",
                 "pga_table1_mnist", "swae_tables_mnist", "swae_tables_fashion",
                 "dpvae_table1_mnist"):
        assert name in STUDIES


@pytest.mark.parametrize("name", STUDIES)
def test_a_bundled_study_loads(name) -> None:
    study = load_study(name)
    assert study.name == name and study.methods and study.seeds
    assert study.selection_seed in study.seeds
    assert study.description, "genae study list shows the description"


@pytest.mark.parametrize("name", STUDIES)
def test_its_metrics_are_what_genae_evaluate_writes(name) -> None:
    study = load_study(name, check_classes=False)
    measured = evaluated_keys(study)
    for key in (*study.metrics, study.selection_metric):
        assert key in measured, f"{name}: {key} is not a key genae evaluate writes ({measured})"


@pytest.mark.parametrize("name", STUDIES)
def test_its_paper_values_stand_beside_metrics_it_measures(name) -> None:
    study = load_study(name, check_classes=False)
    kinds = {kind(m) for m in study.metrics}
    for label, values in study.paper.items():
        for key in values:
            assert kind(key) in kinds, f"{name}: paper.{label}.{key} has no column of ours"


@pytest.mark.parametrize("name", STUDIES)
def test_its_fid_feature_file_exists(name) -> None:
    feature = load_study(name, check_classes=False).evaluation.feature
    if feature not in (None, "inception"):
        assert (ROOT / feature).is_file(), f"{name}: no FID feature file {feature}"


def parsed_config(args: list[str]) -> dict[str, Any]:
    """The config ``genae fit <args> --print_config`` prints (parsed, nothing trained)."""
    from genae_lightning.commands.fit import fit

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        fit([*args, "--print_config"])
    return yaml.safe_load(out.getvalue())


def lookup(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


def landed(value: Any, parsed: Any) -> bool:
    """Whether an override's value is in the parsed config (mappings: the keys given)."""
    if isinstance(value, dict):
        return isinstance(parsed, dict) and all(
            k in parsed and landed(v, parsed[k]) for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return isinstance(parsed, list) and len(parsed) == len(value) and all(
            landed(v, p) for v, p in zip(value, parsed, strict=True))
    return parsed == value or str(parsed) == str(value)  # e.g. trainer.devices 1 parses as "1"


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_genae_fit_takes_every_config_of_it(name, tmp_path) -> None:
    study = load_study(name)
    for dataset in study.datasets:
        for method in study.methods:
            for point in method.grid[:1]:
                trial = make_trial(study, method, dataset.label, dataset.overrides, "test",
                                   study.seeds[0], point, Budget(study.max_steps[0]),
                                   study.evaluation.recalibrate_batchnorm[:1])
                config = parsed_config(trial.fit_args(tmp_path / "runs" / trial.id))
                # every trial's fit ends with FinalCheckpoint (its last.ckpt: the final weights)
                *callbacks, final = lookup(config, "trainer.callbacks")
                assert final["class_path"] == FINAL_CHECKPOINT, (name, method.label)
                for key, value in trial.overrides:
                    if key == "data":  # a data class by name: the parsed one is its class_path
                        assert lookup(config, "data.class_path") == value
                        continue
                    parsed = callbacks if key == "trainer.callbacks" else lookup(config, key)
                    assert landed(value, parsed), (name, method.label, key)
