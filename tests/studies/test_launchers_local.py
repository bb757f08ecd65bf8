"""The ``local`` launcher: torch threads split between its workers, jobs submitted while it
waits, and a worker that dies (its jobs crash, the next submit gets a new pool).

Each test starts a pool of spawned workers (a few seconds: each imports torch).
"""

import os
import subprocess
import sys

import torch

from genae_lightning.studies.launchers.local import LocalLauncher
from genae_lightning.studies.trial import Job, JobResult, thread_environment


def threads_here() -> tuple[int, str | None, str | None, int]:
    """In a worker: its torch threads, its OMP and MKL settings, and those of a process it
    starts as a trial's fit starts (its environment plus the job's threads)."""
    fit = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         env={**os.environ, **thread_environment(torch.get_num_threads())},
                         capture_output=True, text=True, check=True)
    return (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"),
            os.environ.get("MKL_NUM_THREADS"), int(fit.stdout))


def test_the_workers_share_the_cores_and_jobs_submitted_while_it_waits_run(tmp_path) -> None:
    """2 workers on 4 cores: 2 torch threads each, in the worker and in the fits it starts. A
    job's end submits two more (as the driver does): ``wait`` returns all three."""
    assert (LocalLauncher().workers, LocalLauncher().threads) == (
        len(os.sched_getaffinity(0)), 1)  # one per core
    assert LocalLauncher(3, cores=8).threads == 2 and LocalLauncher(4, cores=2).threads == 1
    assert thread_environment(None) == {}
    launcher = LocalLauncher(2, cores=4)
    seen: list[JobResult] = []

    def more(result: JobResult) -> None:
        seen.append(result)
        if result.trial_id == "first":
            launcher.submit([Job(str(tmp_path), "second"), Job(str(tmp_path), "third")])

    try:
        pool = launcher._ensure_pool()
        threads = {pool.submit(threads_here).result(timeout=300) for _ in range(2)}
        launcher.submit([Job(str(tmp_path), "first")])
        results = launcher.wait(more)
    finally:
        launcher.close()
    assert threads == {(2, "2", "2", 2)}
    assert results == seen and results[0].trial_id == "first"
    assert sorted(r.trial_id for r in results) == ["first", "second", "third"]
    assert {(r.outcome, r.detail) for r in results} == {("skipped", "no record")}


def test_a_dead_worker_crashes_its_job_and_the_next_submit_gets_a_new_pool(tmp_path) -> None:
    launcher = LocalLauncher(1, cores=1)
    try:
        pool = launcher._ensure_pool()
        launcher._futures[pool.submit(os._exit, 1)] = ("killed", pool)  # its worker exits

        def again(result: JobResult) -> None:
            if result.trial_id == "killed":
                launcher.submit([Job(str(tmp_path), "after")])

        results = launcher.wait(again)
        assert launcher._pool is not pool and launcher._pool is not None
    finally:
        launcher.close()
    assert [(r.trial_id, r.outcome) for r in results] == [("killed", "crashed"),
                                                          ("after", "skipped")]
    assert results[0].detail.startswith("BrokenProcessPool: a worker process died")
