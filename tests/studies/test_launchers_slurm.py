"""The ``slurm`` launcher: its options from the command line to sbatch, clear errors, the
checkpoint handler, and a study run through submitit's local executor whose job is signalled
mid-fit (SLURM's preemption / time-limit signal), requeued, and resumed to the end.
"""

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from genae_lightning.cli import main
from genae_lightning.studies.launchers import (
    LAUNCHERS,
    SlurmOptions,
    add_launcher_arguments,
    gather,
    launcher_options,
    make_launcher,
)
from genae_lightning.studies.spec import resolve_study
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import Job, JobResult

submitit = pytest.importorskip("submitit")
from genae_lightning.studies.launchers.slurm import (  # noqa: E402
    TrialTask,
    executor_parameters,
    preempt_signal,
)


def one_trial_study(folder: Path, steps: int, every: int) -> Path:
    """The bundled tiny study cut to one trial (AE, seed 0, no grid) of ``steps`` steps, with a
    checkpoint every ``every`` steps."""
    study = yaml.safe_load(resolve_study("tiny").read_text())
    study.update(name="one", seeds=[0], configs={"ae": "ae_mnist"}, budgets={"max_steps": [steps]})
    study["selection"].pop("grid")
    study["overrides"]["trainer.callbacks"][0]["init_args"]["every_n_train_steps"] = every
    path = folder / "one.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_the_options_reach_sbatch(tmp_path, monkeypatch) -> None:
    options = SlurmOptions(partition="gpu", time_min=90, gpus_per_task=1, cpus_per_task=4,
                           mem_gb=16, signal_delay_s=100, sbatch={"requeue": True})
    (tmp_path / "srun").write_text("#!/bin/sh\n")  # submitit's SLURM executor looks for srun
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(tmp_path / "%j", cluster="slurm")
    executor.update_parameters(**executor_parameters(options, 3, "genae-one"))
    text = executor._executor._make_submission_file_text("python -m x", "uid")
    for flag in ("--partition=gpu", "--time=90", "--gpus-per-task=1", "--cpus-per-task=4",
                 "--mem=16GB", "--signal=USR2@100", "--requeue", "--job-name=genae-one",
                 "--ntasks-per-node=1"):
        assert f"#SBATCH {flag}\n" in text, (flag, text)
    assert executor._executor.parameters["array_parallelism"] == 3


def test_options_come_from_the_command_line_and_errors_are_clear(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS)
    add_launcher_arguments(parser)
    args = parser.parse_args(["--launcher", "slurm", "--slurm.partition", "p", "--slurm.time_min",
                              "30", "--slurm.sbatch", '{"qos": "low"}'])
    assert launcher_options(args) == SlurmOptions(partition="p", time_min=30, sbatch={"qos": "low"})
    args = parser.parse_args(["--slurm.partition", "p", "--ray.num_gpus", "1"])
    with pytest.raises(ValueError, match="--ray.num_gpus, --slurm.partition: not an option of "
                                         "--launcher local"):
        launcher_options(args)
    with pytest.raises(ValueError, match="signal_delay_s 600: expected more than 0 and less"):
        make_launcher("slurm", None, SlurmOptions(cluster="local", time_min=10, signal_delay_s=600))
    if shutil.which("sbatch") is None:  # a machine without SLURM
        with pytest.raises(ValueError, match="no `sbatch` on this machine"):
            main(["study", "run", "tiny", "--root", str(tmp_path), "--launcher", "slurm"])


@pytest.mark.parametrize(("launcher", "package"), [("slurm", "submitit"), ("ray", "ray")])
def test_a_missing_package_names_its_extra(launcher, package, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    monkeypatch.delitem(sys.modules, f"genae_lightning.studies.launchers.{launcher}", False)
    with pytest.raises(ImportError, match=rf'pip install "genae-lightning\[{launcher}\]"'):
        make_launcher(launcher)


def test_gather_reports_each_result_and_a_crash() -> None:
    def crash() -> JobResult:
        raise RuntimeError("the worker died\nits trace")

    seen: list[JobResult] = []
    results = gather([("a", lambda: JobResult("a", "done")), ("b", crash)], seen.append)
    assert results == seen == [JobResult("a", "done"),
                               JobResult("b", "crashed", "RuntimeError: the worker died")]


class Ended:
    """A stand-in for a trial thread that has ended with ``outcome``."""

    def __init__(self, outcome: str) -> None:
        self.result = JobResult("t", outcome)

    def is_alive(self) -> bool:
        return False


def test_the_checkpoint_handler_requeues_an_interrupted_trial_only() -> None:
    job = Job("root", "t")
    task = TrialTask(grace=1.0)
    task._runner = Ended("interrupted")
    again = task.checkpoint(job)
    assert isinstance(again.function, TrialTask) and again.args == (job,)
    task._runner = Ended("done")  # ended before the signal: nothing to resume
    assert task.checkpoint(job) is None


def test_a_signalled_trial_is_checkpointed_requeued_and_completes(tmp_path) -> None:
    """`genae study run --launcher slurm --slurm.cluster local`; once the fit has saved a
    checkpoint, the job gets SLURM's signal: the fit saves interrupted.ckpt and exits 3, submitit
    requeues the job, and the requeued job resumes the fit to the last step."""
    root = tmp_path / "root"
    argv = ["study", "run", str(one_trial_study(tmp_path, steps=40, every=2)), "--root",
            str(root), "--launcher", "slurm", "--slurm.cluster", "local", "--slurm.time_min",
            "30", "--heartbeat", "1", "--poll", "0.3"]
    driver = threading.Thread(target=main, args=(argv,))
    driver.start()
    store, deadline, signalled = Store(root), time.monotonic() + 300, None
    while signalled is None and driver.is_alive() and time.monotonic() < deadline:
        for record in store.records().values():
            worker = record.get("worker") or {}
            if worker.get("child") and list(store.run_dir(record["id"]).glob("checkpoints/*")):
                os.kill(worker["pid"], preempt_signal())  # what SLURM sends the job
                signalled = record["id"]
        time.sleep(0.1)
    driver.join(300)
    assert signalled is not None and not driver.is_alive()
    record = store.read(signalled)
    assert record["state"] == "done" and record["steps"] == 40, record
    assert (record["attempts"], record["failures"]) == (2, 0), record
    assert record["fit"]["exit_codes"] == [3, 0], record["fit"]
    # the newer of interrupted.ckpt and the last.ckpt the interrupted fit wrote after it
    resumed = Path(record["fit"]["resumed_from"][0])
    assert resumed.name in ("interrupted.ckpt", "last.ckpt"), record["fit"]
    assert resumed.parent == store.run_dir(signalled) / "checkpoints", record["fit"]
    logs = "".join(p.read_text() for p in (root / "slurm").rglob("*_log.*"))
    assert "Requeued job" in logs, logs
    assert len(list((root / "slurm").rglob("*_submitted.pkl"))) == 1  # one job, requeued
    assert record["metrics"]  # evaluated after the resume
