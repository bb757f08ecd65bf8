"""What every launcher shares: the protocol, the options and the results as jobs end.

:class:`Launcher`, :class:`SlurmOptions`, :class:`RayOptions` and :func:`gather`. The
launchers' modules import this, and :mod:`genae_lightning.studies.launchers` builds them.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from genae_lightning.studies.trial import Job, JobResult


class Launcher(Protocol):
    """Runs jobs somewhere; see the module's docstring."""

    name: str
    threads: int | None  # torch threads per job, set by the launcher (None: torch's default)

    def submit(self, jobs: Sequence[Job]) -> None:
        """Start the jobs."""
        ...

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Block until every submitted job (those ``on_result`` submits too) has ended.

        Returns their results, each passed to ``on_result`` as it comes.
        """
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


def option(default: Any, text: str) -> Any:
    """A launcher option's field: its default and its ``--help`` text."""
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SlurmOptions:
    """``--slurm.<option>``: the SLURM jobs' resources (one array task per trial)."""

    partition: str | None = option(None, "the partition (default: the cluster's)")
    time_min: int = option(60, "each job's time limit in minutes; a trial still running near it "
                               "is checkpointed and its job requeued, to resume")
    gpus_per_task: int = option(0, "GPUs per trial")
    cpus_per_task: int = option(1, "CPUs per trial (also its torch threads)")
    mem_gb: float | None = option(None, "memory per trial in GB (default: the cluster's)")
    account: str | None = option(None, "the account to charge")
    qos: str | None = option(None, "the quality of service")
    constraint: str | None = option(None, "node features the jobs need")
    signal_delay_s: int = option(120, "seconds before the time limit at which SLURM signals a "
                                      "job to checkpoint its trial and requeue")
    sbatch: dict[str, Any] | None = option(None, "further sbatch options as JSON, e.g. "
                                                 "'{\"requeue\": true, \"mail-type\": \"END\"}'")
    folder: str | None = option(None, "submitit's folder of job files and logs, on a shared "
                                      "filesystem (default: <root>/slurm/%%j)")
    cluster: str = option("slurm", "slurm, or local: submitit's local executor on this machine "
                                   "(every job at once; to try a study without SLURM)")


@dataclass(frozen=True)
class RayOptions:
    """``--ray.<option>``: the Ray cluster and each trial's resources (one task per trial)."""

    address: str | None = option(None, "the Ray cluster to join (auto, host:port or "
                                       "ray://host:10001; default: a new local Ray instance)")
    num_cpus: float = option(1, "CPUs per trial (also its torch threads)")
    num_gpus: float = option(0, "GPUs per trial")


def gather(finished: Iterable[tuple[str, Callable[[], JobResult]]],
           on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """The results of jobs as they end, each passed to ``on_result`` as it comes.

    Args:
        finished: ``(trial id, get)`` of each job as it ends, ``get`` returning its result; a
            ``get`` that raises (the job's worker died, the job was cancelled) makes the job
            ``crashed``, with the error's first line.
        on_result: Called with each result.
    """
    results = []
    for trial_id, get in finished:
        try:
            result = get()
        except Exception as err:
            lines = str(err).strip().splitlines() or [""]
            result = JobResult(trial_id, "crashed", f"{type(err).__name__}: {lines[0]}")
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
