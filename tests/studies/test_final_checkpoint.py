"""A trial evaluates the final weights: its fit always leaves them in ``checkpoints/last.ckpt``.

``ModelCheckpoint(every_n_train_steps=n)`` saves only at multiples of ``n`` (and at the end of
training only when it saved nothing before); without ``FitLatentPrior`` (which rewrites
``last.ckpt`` at the end of fit) a fit of 7 steps with ``n = 3`` would leave step 6 there, and a
fit stopped by ``max_time`` its last multiple of ``n``. ``FinalCheckpoint``, which every
trial's fit gets, writes the final state; when ``last.ckpt`` already holds it (the bundled
studies, with ``FitLatentPrior``) it writes nothing.
The two end-to-end tests train for real (a ``genae fit`` subprocess each, ~10 s). On the way,
an equal-time trial's ``trainer.max_time`` is checked to be a duration Lightning takes.
"""

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import genae_lightning
from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.studies.final_checkpoint import FinalCheckpoint
from genae_lightning.studies.plan import FINAL_CHECKPOINT, Budget, make_trial, selection_trials
from genae_lightning.studies.spec import load_study, resolve_study
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import Job, execute


class FakeTrainer:
    """What FinalCheckpoint reads of a trainer; ``save_checkpoint`` writes a tiny checkpoint."""

    def __init__(self, step: int, interrupted: bool = False) -> None:
        self.global_step, self.is_global_zero = step, True
        self.genae_interrupted = interrupted
        self.strategy = SimpleNamespace(broadcast=lambda value, src=0: value)
        self.saved: list[str] = []

    def save_checkpoint(self, path: str) -> None:
        torch.save({"global_step": self.global_step, "state_dict": {}}, path)
        self.saved.append(path)


def test_it_writes_a_missing_or_stale_last_ckpt_and_leaves_a_final_one(tmp_path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    callback = FinalCheckpoint(str(path))
    trainer = FakeTrainer(7)
    callback.on_train_end(trainer, None)  # no file yet
    assert trainer.saved == [str(path)] and read_checkpoint(path)["global_step"] == 7
    torch.save({"global_step": 6, "state_dict": {}}, path)  # ModelCheckpoint's step 6
    callback.on_train_end(trainer, None)
    assert len(trainer.saved) == 2 and read_checkpoint(path)["global_step"] == 7
    final = FakeTrainer(7)  # FitLatentPrior has written the final state: nothing is written
    callback.on_train_end(final, None)
    assert final.saved == []
    interrupted = FakeTrainer(9, interrupted=True)  # resumes from interrupted.ckpt
    callback.on_train_end(interrupted, None)
    assert interrupted.saved == [] and read_checkpoint(path)["global_step"] == 7


def test_every_trial_fit_gets_it_after_the_study_callbacks(tmp_path) -> None:
    assert FINAL_CHECKPOINT == f"{FinalCheckpoint.__module__}.{FinalCheckpoint.__qualname__}"
    trial = selection_trials(load_study("tiny", check_classes=False))[0]
    run_dir = tmp_path / "runs" / trial.id
    args = trial.fit_args(run_dir)
    final = {"class_path": FINAL_CHECKPOINT,
             "init_args": {"path": str(run_dir / "checkpoints" / "last.ckpt")}}
    assert args[-1] == f"--trainer.callbacks+={json.dumps(final)}"
    assert args.index(args[-1]) > max(i for i, a in enumerate(args)
                                      if a.startswith("--trainer.callbacks="))


def study_without_fit_latent_prior(folder: Path, every: int) -> Path:
    """The tiny study cut to AE with seed 0, no grid, no FitLatentPrior: only a ModelCheckpoint
    every ``every`` steps."""
    study = yaml.safe_load(resolve_study("tiny").read_text())
    study.update(name="stale", seeds=[0], configs={"ae": "ae_mnist"})
    study["selection"].pop("grid")
    study["overrides"]["trainer.callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"save_last": True, "every_n_train_steps": every}}]
    path = folder / "stale.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def run_one(root: Path, budget: Budget, every: int) -> tuple[dict, int]:
    """Run the one trial of that study at ``budget``; its record and the steps its fit ran."""
    study = load_study(study_without_fit_latent_prior(root.parent, every))
    method, dataset = study.methods[0], study.datasets[0]
    trial = make_trial(study, method, dataset.label, dataset.overrides, "test", 0, (), budget,
                       (0,))
    store = Store(root)
    store.init({"name": study.name})
    store.add(trial.to_json())
    result = execute(Job(str(root), trial.id, retries=0, threads=1))
    record = store.read(trial.id)
    assert result.outcome == "done", record.get("error")
    log = (store.run_dir(trial.id) / "fit.log").read_text()
    ran = int(re.findall(r"genae fit: done in .*\((\d+) steps\)", log)[-1])
    return record, ran


def test_a_trial_evaluates_its_final_step_whatever_the_checkpoint_interval(tmp_path) -> None:
    record, ran = run_one(tmp_path / "store", Budget(7), every=3)  # saves at 3 and 6 only
    assert ran == 7 and record["steps"] == 7
    assert read_checkpoint(tmp_path / "store" / record["checkpoint"])["global_step"] == 7
    assert record["evaluations"]["recalibrate_batchnorm=0"]["global_step"] == 7
    # what the numbers depend on besides the settings: this attempt's code, torch, threads
    [env] = record["environments"]
    assert env["attempt"] == 1 and env["threads"] == 1 and env["torch"] == torch.__version__
    assert env["genae"] == genae_lightning.__version__ and env["git"] == subprocess.run(
        ["git", "-C", str(Path(genae_lightning.__file__).parent), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True).stdout.strip()


def test_an_equal_time_trial_evaluates_the_weights_it_stopped_with(tmp_path) -> None:
    """Stopped by max_time at whatever step (hundreds here), not a multiple of the checkpoint
    interval 7 but by chance: before, last.ckpt held the last multiple of 7 (Lightning's
    ModelCheckpoint saves last.ckpt at the end of training only when it saved none before)."""
    record, ran = run_one(tmp_path / "store", Budget(100_000, 3), every=7)
    assert 7 < ran < 100_000 and record["steps"] == ran
    assert record["evaluations"]["recalibrate_batchnorm=0"]["global_step"] == ran
    assert record["train_seconds"] >= 3


@pytest.mark.parametrize(("seconds", "max_time"), [
    (3, "00:00:00:03"), (837, "00:00:13:57"), (90_061, "01:01:01:01")])
def test_an_equal_time_budget_is_a_duration_lightning_takes(tmp_path, seconds, max_time) -> None:
    """``00:00:00:837`` (the study's old form) is refused by Lightning's Timer."""
    from lightning.pytorch.callbacks import Timer

    study = load_study("tiny", check_classes=False)
    method, dataset = study.methods[1], study.datasets[0]
    trial = make_trial(study, method, dataset.label, dataset.overrides, "test", 0, (),
                       Budget(240, seconds), (0,))
    assert f"--trainer.max_time={max_time}" in trial.fit_args(tmp_path)
    assert Timer(duration=max_time)._duration == seconds


def test_a_fit_that_leaves_other_weights_fails_its_trial_saying_why(tmp_path,
                                                                    monkeypatch) -> None:
    """The invariant, checked after every fit: last.ckpt exists and holds the step the fit
    said it ended at (here a fit stands in: it writes step 6 and says it ran 7)."""
    from genae_lightning.studies.trial import TrialRun

    def fake_fit(self: TrialRun, args: list[str], log: Path, step: int | None = 6):
        folder = log.parent / "checkpoints"
        folder.mkdir(exist_ok=True)
        if step is not None:
            torch.save({"global_step": step, "state_dict": {}}, folder / "last.ckpt")
        self.fit_steps = 7
        return 0, 1.0, 0.5

    study = load_study("tiny", check_classes=False)
    trial = selection_trials(study)[0]
    for root, step, message in (
            (tmp_path / "a", 6, "last.ckpt holds the weights of step 6, but the fit ended at "
                                "step 7: evaluating it would score stale weights. Keep "
                                f"{FINAL_CHECKPOINT} in the fit's callbacks"),
            (tmp_path / "b", None, f"left no {tmp_path / 'b'}")):
        monkeypatch.setattr(TrialRun, "subprocess",
                            lambda self, args, log, step=step: fake_fit(self, args, log, step))
        store = Store(root)
        store.init({"name": "tiny"})
        store.add(trial.to_json())
        result = execute(Job(str(root), trial.id, retries=0))
        assert result.outcome == "failed" and message in result.detail, result.detail
        assert store.read(trial.id)["error"].startswith("TrialError: ")
