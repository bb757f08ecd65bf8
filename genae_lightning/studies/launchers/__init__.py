"""Launchers: where a study's trials run. Each is a sibling module with a :class:`Launcher`.

A launcher runs :func:`~genae_lightning.studies.trial.execute` on
:class:`~genae_lightning.studies.trial.Job` s, somewhere, and tells the driver when they have
ended. It schedules nothing itself beyond that: which trials run, retries and "nothing twice"
are the store's (:mod:`~genae_lightning.studies.store`), so a launcher may run a job twice, lose
one, or run it on another machine, and the study stays correct. The protocol:

- ``submit(jobs)``: start the jobs (returns at once, or when they are queued);
- ``wait(on_result)``: block until every submitted job has ended, calling ``on_result`` with
  each :class:`~genae_lightning.studies.trial.JobResult` as it comes (``crashed`` for a job
  whose worker died); return them all;
- ``close()``: release the workers.

Adding one (``slurm`` through submitit's ``AutoExecutor``, ``ray`` through ``ray.remote``):
write ``launchers/<name>.py`` with a class taking ``workers`` (and its own options) and add
its name to :data:`LAUNCHERS`. ``Job`` and ``execute`` are picklable as they are; the job's
``threads`` is the launcher's to set (cores per task). The reference is
:mod:`~genae_lightning.studies.launchers.local`.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

from genae_lightning.studies.launchers.local import LocalLauncher
from genae_lightning.studies.trial import Job, JobResult


class Launcher(Protocol):
    """Runs jobs somewhere; see the module's docstring."""

    name: str
    threads: int | None  # torch threads per job, set by the launcher (None: torch's default)

    def submit(self, jobs: Sequence[Job]) -> None:
        """Start the jobs."""
        ...

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Block until every submitted job has ended; their results, each to ``on_result``."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


# The launchers' names (``genae study run --launcher``); each is built by make_launcher.
LAUNCHERS = ("local",)


def make_launcher(name: str, workers: int | None = None) -> Launcher:
    """The launcher called ``name`` with ``workers`` workers.

    Raises:
        ValueError: No launcher has that name.
    """
    if name == "local":
        return LocalLauncher(workers)
    raise ValueError(f"--launcher {name!r}: expected one of {', '.join(LAUNCHERS)} (slurm and "
                     "ray are not written yet; see genae_lightning/studies/launchers/)")
