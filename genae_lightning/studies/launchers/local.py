"""The ``local`` launcher: a pool of worker processes on this machine sharing its cores.

``workers`` processes (default: one per core) each run one trial at a time, with
``cores // workers`` torch threads (``OMP_NUM_THREADS`` of the fit, ``torch.set_num_threads``
of the evaluation), so every core is busy and none is oversubscribed. Workers are spawned (no
fork of the driver's threads) and die with the driver (Linux: ``PR_SET_PDEATHSIG``), and their
fits die with them: a killed driver leaves nothing running, and its trials' claims go stale at
once (dead pid on this host), so a restarted driver resumes them from their checkpoints.

A worker that dies (killed, out of memory) breaks the pool: its job and those of the other
workers report ``crashed``, their fits stop, and the next ``submit`` starts a fresh pool; the
driver resubmits the trials, which resume from their checkpoints.
"""

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from genae_lightning.studies.trial import DIE_WITH_PARENT, Job, JobResult, execute


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _start_worker(threads: int, driver: int) -> None:
    """Pool initializer: die with the driver, use ``threads`` threads."""
    if DIE_WITH_PARENT is not None:
        DIE_WITH_PARENT()
    if os.getppid() != driver:  # the driver died before the line above
        os._exit(1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class LocalLauncher:
    """A process pool on this machine (see the module's docstring).

    Args:
        workers: Trials run at once (default: one per core).
        cores: Cores to share between them (default: those this process may use).
    """

    name = "local"

    def __init__(self, workers: int | None = None, cores: int | None = None) -> None:
        cores = cores or available_cores()
        self.workers = workers or cores
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        self.threads: int | None = max(1, cores // self.workers)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, str] = {}

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.threads, os.getpid()))
        return self._pool

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue the jobs on the pool (each with this launcher's threads)."""
        pool = self._ensure_pool()
        for job in jobs:
            self._futures[pool.submit(execute, replace(job, threads=self.threads))] = job.trial_id

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Every submitted job's result once all have ended, each to ``on_result`` as it ends.

        A job whose worker died is ``crashed``; the pool is then closed (the next ``submit``
        starts a new one).
        """
        results, broken = [], False
        for future in as_completed(self._futures):
            trial_id = self._futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                broken = True
                result = JobResult(trial_id, "crashed", "a worker process died")
            except Exception as err:  # execute records trial errors itself; this is the pool's
                result = JobResult(trial_id, "crashed", f"{type(err).__name__}: {err}")
            results.append(result)
            if on_result is not None:
                on_result(result)
        self._futures.clear()
        if broken:
            self.close()
        return results

    def close(self) -> None:
        """Stop the workers (queued jobs are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
