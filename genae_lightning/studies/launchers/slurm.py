"""The ``slurm`` launcher: each trial one task of a SLURM job array, through submitit.

Each :meth:`SlurmLauncher.submit` is one job array (``sbatch --array``, at most ``workers``
of its tasks running at once), each task one trial with the resources of :class:`SlurmOptions`
(partition, GPUs and CPUs per task, memory, time limit); the trial's torch threads are its
CPUs. The driver submits a batch as trials become ready (a config's test trials once its
selection is decided), also while it waits for earlier arrays, so several arrays may run at
once. The driver (on a login node) waits for the tasks' results; the store, the runs and
submitit's folder (``<root>/slurm``) must be on a filesystem the nodes share, and the nodes
must run the driver's Python (submitit starts ``sys.executable``).

**Requeue on preemption and at the time limit.** SLURM signals a job (``USR2``) when it is
preempted (if the cluster sets ``SlurmctldParameters=preempt_send_user_signal``) and
``signal_delay_s`` before its time limit. Submitit then calls :meth:`TrialTask.checkpoint`,
which sends the trial's ``genae fit`` SIGTERM and waits for it: the fit saves
``interrupted.ckpt`` and exits with status 3, and the trial is recorded ``pending`` (not
failed), as after any interrupt (:mod:`~genae_lightning.studies.trial`). Submitit requeues the
job (``scontrol requeue``: same job, same array slot) and the requeued task resumes the trial
from that checkpoint. The trial runs in a thread that blocks ``USR2`` (and so does the fit it
starts, which inherits the mask), so the signal reaches only submitit's handler. A job stopped
with SIGTERM alone (``scancel``, preemption without the user signal) reaches the fit directly,
which checkpoints the same way; its task then ends with the trial ``interrupted`` and the
driver submits it again.

A task that dies (killed, out of memory) reports ``crashed`` with its log; the driver submits
the trial again and it resumes from its last checkpoint. :meth:`SlurmLauncher.close` cancels
the jobs still queued or running (their fits checkpoint at SIGTERM); a driver that is lost
instead (its terminal closed) leaves them running, and a restarted driver waits for them
through the store.

Without submitit installed the module imports (for the docs and doctests), and
:class:`SlurmLauncher` says which extra installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from genae_lightning.studies.launchers.base import SlurmOptions, gather
from genae_lightning.studies.store import Store
from genae_lightning.studies.trial import Job, JobResult, execute

try:
    import submitit
    from submitit.core.utils import FailedJobError, UncompletedJobError
    from submitit.helpers import DelayedSubmission
except ModuleNotFoundError:  # the optional extra, named by SlurmLauncher
    submitit = None

MISSING = '--launcher slurm needs submitit: pip install "genae-lightning[slurm]"'
POLL_SECONDS = 1.0  # between looks at the jobs (submitit spaces its sacct calls itself)


def executor_parameters(options: SlurmOptions, workers: int, name: str) -> dict[str, Any]:
    """The options as submitit's ``AutoExecutor.update_parameters``: one task per job."""
    return {
        "name": name, "timeout_min": options.time_min, "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb, "nodes": 1, "tasks_per_node": 1,
        "slurm_partition": options.partition, "slurm_gpus_per_task": options.gpus_per_task or None,
        "slurm_account": options.account, "slurm_qos": options.qos,
        "slurm_constraint": options.constraint, "slurm_signal_delay_s": options.signal_delay_s,
        "slurm_array_parallelism": workers, "slurm_additional_parameters": options.sbatch,
        "local_gpus_per_node": options.gpus_per_task,
    }


class SlurmLauncher:
    """SLURM job arrays through submitit (see the module's docstring).

    Args:
        workers: Tasks of one array running at once (default 256, submitit's).
        options: The jobs' resources and where submitit works (default: :class:`SlurmOptions`).

    Raises:
        ImportError: submitit is not installed.
        ValueError: A bad option, or no SLURM here (``sbatch`` missing) for ``cluster: slurm``.
    """

    name = "slurm"

    def __init__(self, workers: int | None = None, options: SlurmOptions | None = None) -> None:
        if submitit is None:
            raise ImportError(MISSING)
        self.options = options = options or SlurmOptions()
        self.workers = workers or 256
        if self.workers < 1 or options.cpus_per_task < 1 or options.gpus_per_task < 0:
            raise ValueError(f"--workers {self.workers}, --slurm.cpus_per_task "
                             f"{options.cpus_per_task}, --slurm.gpus_per_task "
                             f"{options.gpus_per_task}: expected at least 1, 1 and 0")
        if not 0 < options.signal_delay_s < 60 * options.time_min:
            raise ValueError(f"--slurm.signal_delay_s {options.signal_delay_s}: expected more "
                             f"than 0 and less than the time limit ({options.time_min} min)")
        if options.cluster not in ("slurm", "local"):
            raise ValueError(f"--slurm.cluster {options.cluster!r}: expected slurm or local")
        if options.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--launcher slurm: no `sbatch` on this machine; run the driver on "
                             "a node that submits SLURM jobs (a login node), or try the study "
                             "here with --slurm.cluster local")
        self.threads: int | None = options.cpus_per_task
        self._executor: submitit.AutoExecutor | None = None
        self._jobs: dict[str, tuple[submitit.Job, str]] = {}

    def executor(self, root: str) -> submitit.AutoExecutor:
        """The submitit executor, its folder under the study's ``root`` unless one was given."""
        if self._executor is None:
            folder = self.options.folder or str(Path(root) / "slurm" / "%j")
            self._executor = submitit.AutoExecutor(folder, cluster=self.options.cluster)
            self._executor.update_parameters(**executor_parameters(
                self.options, self.workers, f"genae-{Path(root).name}"))
        return self._executor

    def submit(self, jobs: Sequence[Job]) -> None:
        """Submit the jobs as one job array (each with ``cpus_per_task`` threads)."""
        if not jobs:
            return
        task = TrialTask(grace=0.8 * self.options.signal_delay_s)
        submitted = self.executor(jobs[0].root).map_array(
            task, [replace(job, threads=self.threads) for job in jobs])
        self._jobs.update({array_job.job_id: (array_job, job.trial_id)
                           for array_job, job in zip(submitted, jobs, strict=True)})

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Every submitted job's result once all (those submitted meanwhile too) have ended.

        Each is passed to ``on_result`` as it ends.
        """
        return gather(self._ended(), on_result)

    def _ended(self) -> Iterator[tuple[str, Callable[[], JobResult]]]:
        """``(trial id, get its result)`` of each job as it ends, until none is left.

        A look every :data:`POLL_SECONDS`, as submitit's ``as_completed`` (its jobs space their
        ``sacct`` calls themselves).
        """
        while self._jobs:
            ended = [key for key, (job, _) in self._jobs.items() if job.done()]
            for key in ended:
                job, trial_id = self._jobs.pop(key)
                yield trial_id, partial(job_result, job)
            if not ended:
                time.sleep(POLL_SECONDS)

    def close(self) -> None:
        """Cancel the jobs still queued or running (their fits checkpoint at SIGTERM)."""
        for job, _ in self._jobs.values():
            if not job.done():
                job.cancel(check=False)
        self._jobs.clear()


def job_result(job: submitit.Job) -> JobResult:
    """The result of an ended job.

    Raises:
        RuntimeError: The job ended without one (its task died or was cancelled); the message
            names its log.
    """
    try:
        return job.result()
    except (FailedJobError, UncompletedJobError) as err:
        raise RuntimeError(f"submitit job {job.job_id} ended without a result; its log: "
                           f"{job.paths.stderr}") from err


def preempt_signal() -> signal.Signals:
    """The signal SLURM sends at preemption and before the time limit (submitit's).

    USR2, unless the ``SUBMITIT_PREEMPT_SIGNAL`` environment variable names another.
    """
    return signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]


class TrialThread(threading.Thread):
    """Runs :func:`execute` with :func:`preempt_signal` blocked (the fit inherits the mask)."""

    def __init__(self, job: Job) -> None:
        super().__init__(daemon=True, name="study-trial")
        self.job = job
        self.result: JobResult | None = None
        self.error: BaseException | None = None
        self._stopped: set[int] = set()

    def run(self) -> None:
        """Run the trial."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {preempt_signal()})
        try:
            self.result = execute(self.job)
        except BaseException as err:  # re-raised by the task, for submitit to report
            self.error = err

    def stop(self) -> None:
        """Send the trial's running fit SIGTERM, once: it checkpoints and exits with status 3."""
        worker = (Store(self.job.root).read(self.job.trial_id) or {}).get("worker") or {}
        pid = worker.get("child")
        if worker.get("pid") == os.getpid() and pid not in self._stopped and running_child(pid):
            os.kill(pid, signal.SIGTERM)
            self._stopped.add(pid)


def running_child(pid: Any) -> bool:
    """Whether ``pid`` is a child process of this one that has not exited (none is reaped)."""
    if not isinstance(pid, int):
        return False
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


class TrialTask:
    """What each array task runs: one job's trial, checkpointed and requeued at the signal.

    Submitit calls the :meth:`checkpoint` method of the function it runs at the signal (as of
    its ``helpers.Checkpointable``).

    Args:
        grace: Seconds :meth:`checkpoint` waits for the trial to stop (its fit to checkpoint,
            or an evaluation under way to end) before the job is requeued all the same.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._runner: TrialThread | None = None

    def __call__(self, job: Job) -> JobResult:
        """Run the job's trial in a :class:`TrialThread`; its result."""
        self._runner = runner = TrialThread(job)
        runner.start()
        try:
            while runner.is_alive():  # the main thread runs the signal's handler: it looks
                runner.join(0.2)  # often, as another thread may have caught the signal for it
        except UncompletedJobError:  # signalled, not requeued: the trial ended, or out of requeues
            runner.join()
        if runner.error is not None:
            raise runner.error
        assert runner.result is not None
        return runner.result

    def checkpoint(self, job: Job) -> DelayedSubmission | None:
        """Called by submitit at the signal: stop the trial, then requeue the job to resume it.

        Returns:
            The job again (submitit requeues it), or None when the trial ended some other way
            (done, failed, held elsewhere): nothing to resume, and the task returns its result.
        """
        runner = self._runner
        deadline = time.monotonic() + self.grace
        while runner is not None and runner.is_alive() and time.monotonic() < deadline:
            runner.stop()  # again each time: a fit that was just starting gets it too
            runner.join(0.5)
        if runner is None or runner.is_alive() or (
                runner.result is not None and runner.result.outcome == "interrupted"):
            return DelayedSubmission(TrialTask(self.grace), job)
        return None
