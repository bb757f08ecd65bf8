"""Trials: stable ids, the selection on validation, test and equal-time trials."""

import math
from dataclasses import replace

import pytest
import yaml

from genae_lightning.studies.definition import EqualTime
from genae_lightning.studies.plan import (
    Budget,
    Trial,
    equal_time_seconds,
    select,
    selection_trials,
    test_trials,
    time_trials,
)
from genae_lightning.studies.spec import load_study


@pytest.fixture(scope="module")
def study():
    return load_study("tiny", check_classes=False)


def done(value: float, **extra) -> dict:
    return {"state": "done", "metrics": {"recalibrate_batchnorm=0": {"val/rec_sse": value}},
            **extra}


def test_trial_ids_are_stable_and_follow_every_setting(study) -> None:
    ids = [t.id for t in selection_trials(study)]
    assert ids == [t.id for t in selection_trials(load_study("tiny", check_classes=False))]
    assert ids == ["select-ae-synthetic-s0-5057b6dfbe", "select-ae-synthetic-s0-30ceebaa57"]
    longer = replace(study, selection_steps=13)
    wider = replace(study, overrides=(*study.overrides, ("model.init_args.latent_dim", 3)))
    for other in (longer, wider):
        assert not {t.id for t in selection_trials(other)} & set(ids)
    unrelated = replace(study, wandb={"project": "elsewhere"}, description="x")
    assert [t.id for t in selection_trials(unrelated)] == ids


def test_a_trial_survives_its_json(study) -> None:
    for trial in selection_trials(study):
        assert Trial.from_json(trial.to_json()) == trial


def test_selection_takes_the_lowest_once_the_grid_is_settled(study) -> None:
    grid = selection_trials(study)
    records = {grid[0].id: done(3.0), grid[1].id: done(2.0)}
    assert ("ae", "synthetic") not in select(study, grid, records, [grid[0].id])
    chosen = select(study, grid, records, [t.id for t in grid])[("ae", "synthetic")]
    assert (chosen.trial, chosen.value, chosen.point) == (grid[1].id, 2.0, grid[1].point)
    records[grid[1].id] = done(math.nan)  # diverged: not a candidate
    assert select(study, grid, records, [t.id for t in grid])["ae", "synthetic"].trial == grid[0].id
    highest = replace(study, selection_mode="max")
    records[grid[1].id] = done(2.0)
    assert select(highest, grid, records, [t.id for t in grid])["ae", "synthetic"].value == 3.0
    no_fid = {t.id: {"state": "failed"} for t in grid}  # nothing to select from
    assert ("ae", "synthetic") not in select(study, grid, no_fid, [t.id for t in grid])
    assert select(study, grid, {}, [])[("beta_vae", "synthetic")].trial is None  # no choice


def test_test_trials_reuse_the_selection_run_for_its_seed(study) -> None:
    grid = selection_trials(study)
    records = {grid[0].id: done(3.0), grid[1].id: done(2.0)}
    tests = test_trials(study, select(study, grid, records, list(records)))
    ae = [t for t in tests if t.method == "ae"]
    assert [(t.seed, t.reuses) for t in ae] == [(0, grid[1].id), (1, None)]
    assert all(t.point == grid[1].point and t.split == "test" for t in ae)
    assert [t.reuses for t in tests if t.method == "beta_vae"] == [None, None]
    two_budgets = replace(study, max_steps=(12, 24))
    more = test_trials(two_budgets, select(two_budgets, grid, records, list(records)))
    assert sum(t.reuses is not None for t in more) == 1 and len(more) == 8


def test_equal_time_uses_the_slowest_reference_median(study) -> None:
    timed = replace(study, equal_time=EqualTime(("ae",), (12,), 3))
    grid = selection_trials(timed)
    records = {grid[0].id: done(3.0), grid[1].id: done(2.0)}
    selections = select(timed, grid, records, list(records))
    tests = test_trials(timed, selections)
    assert equal_time_seconds(timed, tests, records) == {}  # references not done
    for trial, seconds in zip([t for t in tests if t.method == "ae"], (10.0, 30.0), strict=True):
        records[trial.id] = done(1.0, train_seconds=seconds)
    assert equal_time_seconds(timed, tests, records) == {("synthetic", 12): 20}
    trials = time_trials(timed, selections, {("synthetic", 12): 20})
    assert [(t.method, t.budget) for t in trials] == [("beta_vae", Budget(36, 20))] * 2
    assert trials[0].budget.name == "time=20s"


def test_fit_args_set_seed_budget_run_folder_and_wandb_run(study, tmp_path) -> None:
    trial = replace(selection_trials(study)[0], wandb={"project": "p"})
    args = trial.fit_args(tmp_path / "runs" / trial.id, "abc-123")
    assert args[:3] == ["fit", "--config", "ae_mnist"]
    assert "--seed_everything=0" in args and "--trainer.max_steps=12" in args
    assert "--model.init_args.latent_dim=4" in args
    logger = next(a for a in args if a.startswith("--trainer.logger="))
    for text in ('"group": "tiny"', '"job_type": "select"', '"id": "abc-123"',
                 '"point": {"model.init_args.latent_dim": 4}', '"method": "ae"'):
        assert text in logger, text


def test_genae_fit_takes_the_trial_arguments(study, tmp_path, capsys) -> None:
    from genae_lightning.commands.fit import fit

    trial = replace(selection_trials(study)[0], wandb={"project": "p", "entity": "e"})
    run_dir = tmp_path / "runs" / trial.id
    with pytest.raises(SystemExit):
        fit([*trial.fit_args(run_dir, "abc-123"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    csv, wandb = config["trainer"]["logger"]
    assert csv["init_args"]["save_dir"] == str(run_dir.parent)
    assert csv["init_args"]["version"] == trial.id and csv["init_args"]["name"] is None
    args = wandb["init_args"]
    assert (args["group"], args["job_type"], args["id"], args["entity"]) == (
        "tiny", "select", "abc-123", "e")
    assert args["config"]["study"]["point"] == {"model.init_args.latent_dim": 4}
    assert (args["config"]["method"], args["config"]["trial"]) == ("ae", trial.id)  # flat
    assert config["model"]["init_args"]["latent_dim"] == 4 and config["seed_everything"] == 0
    assert config["data"]["class_path"] == "genae_lightning.data.SyntheticImages"
    assert config["trainer"]["max_time"] == "365:00:00:00"  # a Timer measures the training
    timed = replace(trial, budget=Budget(36, 20))
    with pytest.raises(SystemExit):
        fit([*timed.fit_args(run_dir), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["max_time"] == "00:00:00:20"
    assert config["trainer"]["max_steps"] == 36
