"""The ``local`` launcher: a pool of worker processes on this machine sharing its cores.

``workers`` processes (default: one per core) each run one trial at a time, with
``cores // workers`` torch threads (``OMP_NUM_THREADS`` of the fit, ``torch.set_num_threads``
of the evaluation), so every core is busy and none is oversubscribed. Workers are spawned (no
fork of the driver's threads) and die with the driver (Linux: ``PR_SET_PDEATHSIG``), and their
fits die with them: a killed driver leaves nothing running, and its trials' claims go stale at
once (dead pid on this host), so a restarted driver resumes them from their checkpoints. Ctrl-C
or SIGTERM to the driver stops it gently instead: :meth:`LocalLauncher.close` asks the running
workers to stop, their fits save ``interrupted.ckpt`` and their trials are recorded ``pending``.

Jobs may be submitted while :meth:`LocalLauncher.wait` runs (from its ``on_result``, as the
driver does when a job's end lets more trials run): they join the queue, and ``wait`` returns
once they have ended too.

A worker that dies (killed, out of memory) breaks the pool: its job and those of the other
workers report ``crashed``, their fits stop, the pool's workers are gone before the first of
them is reported, and the next ``submit`` starts a fresh pool; the driver resubmits the trials,
which resume from their checkpoints.
"""

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import partial

from genae_lightning.studies.launchers.base import gather
from genae_lightning.studies.trial import (
    DIE_WITH_PARENT,
    Job,
    JobResult,
    execute,
    stop_this_worker,
    thread_environment,
)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _start_worker(threads: int, driver: int) -> None:
    """Pool initializer: die with the driver, use ``threads`` threads, stop on a signal.

    SIGINT (Ctrl-C reaches the whole foreground group) and SIGTERM (from the driver's
    :meth:`LocalLauncher.close`, or ``kill`` of the group) stop the worker's trial with a
    checkpoint (:func:`~genae_lightning.studies.trial.stop_this_worker`); its fit runs in a
    session of its own, so the signal reaches it once, from here.
    """
    if DIE_WITH_PARENT is not None:
        DIE_WITH_PARENT()
    if os.getppid() != driver:  # the driver died before the line above
        os._exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop_this_worker())
    os.environ.update(thread_environment(threads))  # what the fits it starts inherit
    import torch

    torch.set_num_threads(threads)  # its evaluations (torch was imported with this module)


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
        self._futures: dict[Future, tuple[str, ProcessPoolExecutor]] = {}

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(self.threads, os.getpid()))
        return self._pool

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue the jobs on the pool (each with this launcher's threads), a new one if it broke."""
        for job in jobs:
            job = replace(job, threads=self.threads, own_session=True)
            try:
                future = self._ensure_pool().submit(execute, job)
            except BrokenProcessPool:  # it broke after its last result was seen: its jobs crash
                self._drop_pool(self._pool)
                future = self._ensure_pool().submit(execute, job)
            self._futures[future] = (job.trial_id, self._pool)

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Every submitted job's result once all (those submitted meanwhile too) have ended.

        Each is passed to ``on_result`` as it ends. A job whose worker died is ``crashed``
        (:func:`~.base.gather`); its pool is closed before the first such job is reported (its
        workers have stopped by then), and the next ``submit`` starts a new one.
        """
        return gather(self._ended(), on_result)

    def _ended(self) -> Iterator[tuple[str, Callable[[], JobResult]]]:
        """``(trial id, get its result)`` of each job as it ends, until none is left.

        Jobs that end at once come in submission order.
        """
        while self._futures:
            done, _ = wait_for(list(self._futures), return_when=FIRST_COMPLETED)
            for future in [f for f in self._futures if f in done]:
                trial_id, pool = self._futures.pop(future)
                if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
                    self._drop_pool(pool)
                yield trial_id, partial(result, future)

    def _drop_pool(self, pool: ProcessPoolExecutor | None) -> None:
        """Close ``pool`` (waiting for its workers to stop) if it is the current one."""
        if pool is not None and pool is self._pool:
            self._pool = None
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (queued jobs are cancelled).

        Jobs still running (the study was stopped: Ctrl-C, or SIGTERM to the driver) are asked
        to stop first: each fit saves ``interrupted.ckpt`` and exits, its trial is recorded
        ``pending``, and this waits for that.
        """
        if self._pool is not None and not all(f.done() for f in self._futures):
            # the pool's worker processes (a private attribute of ProcessPoolExecutor, there
            # since Python 3.2; there is no public way to signal them before 3.14)
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        self._drop_pool(self._pool)
        self._futures.clear()


def result(future: Future) -> JobResult:
    """A job's result.

    Raises:
        BrokenProcessPool: Its worker, or another of its pool, died (killed, out of memory).
    """
    try:
        return future.result()
    except BrokenProcessPool as err:
        raise BrokenProcessPool("a worker process died (killed, or out of memory); the trial "
                                "resumes from its last checkpoint") from err
