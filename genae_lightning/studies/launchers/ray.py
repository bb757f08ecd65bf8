"""The ``ray`` launcher: each trial one Ray task, on a Ray cluster or a local Ray instance.

``--ray.address`` joins a running cluster (``auto`` on one of its nodes, or ``ray://host:10001``
through Ray Client); without it, a local Ray instance is started on this machine (and stopped by
:meth:`RayLauncher.close`). A driver that has already called ``ray.init`` keeps its instance.
Each trial is one remote :func:`~genae_lightning.studies.trial.execute` with
``--ray.num_cpus`` CPUs (also its torch threads) and ``--ray.num_gpus`` GPUs; Ray runs as many
at once as the cluster's resources allow, and does not retry a task (the store does: a trial
whose worker died reports ``crashed``, and the driver submits it again, resuming from its last
checkpoint). The store and the runs must be on a filesystem the cluster's nodes share, with genae
installed on every node. The trials' output is in their runs' ``fit.log`` and
``evaluate.log``, not on the driver's console.

:meth:`RayLauncher.close` cancels the tasks still running, killing their workers (their fits
die with them): those trials resume from their last checkpoints when the study runs again.

Without Ray installed the module imports (for the docs and doctests), and :class:`RayLauncher`
says which extra installs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial

from genae_lightning.studies.launchers.base import RayOptions, gather
from genae_lightning.studies.trial import Job, JobResult, execute

try:
    import ray
except ModuleNotFoundError:  # the optional extra, named by RayLauncher
    ray = None

MISSING = '--launcher ray needs Ray: pip install "genae-lightning[ray]"'


class RayLauncher:
    """Ray tasks, one per trial (see the module's docstring).

    Args:
        workers: Not used: Ray runs as many trials at once as its resources allow. Must be None.
        options: The cluster's address and each trial's resources (default: :class:`RayOptions`).

    Raises:
        ImportError: Ray is not installed.
        ValueError: ``workers`` was given, or a bad option.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, options: RayOptions | None = None) -> None:
        if ray is None:
            raise ImportError(MISSING)
        self.options = options = options or RayOptions()
        if workers is not None:
            raise ValueError("--workers is not an option of --launcher ray: Ray runs as many "
                             "trials at once as its resources allow; set each trial's with "
                             "--ray.num_cpus and --ray.num_gpus")
        if options.num_cpus <= 0 or options.num_gpus < 0:
            raise ValueError(f"--ray.num_cpus {options.num_cpus}, --ray.num_gpus "
                             f"{options.num_gpus}: expected more than 0, and 0 or more")
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=options.address, log_to_driver=False)
        self.threads: int | None = max(1, int(options.num_cpus))
        resources = ray.cluster_resources()
        fits = [resources.get("CPU", 1) / options.num_cpus]
        if options.num_gpus:
            fits.append(resources.get("GPU", 0) / options.num_gpus)
        self.workers = max(1, int(min(fits)))  # trials the cluster runs at once
        self._execute = ray.remote(execute).options(
            num_cpus=options.num_cpus, num_gpus=options.num_gpus, max_retries=0)
        self._refs: dict[ray.ObjectRef, str] = {}

    def submit(self, jobs: Sequence[Job]) -> None:
        """Start one task per job (each with ``num_cpus`` threads)."""
        for job in jobs:
            self._refs[self._execute.remote(replace(job, threads=self.threads))] = job.trial_id

    def wait(self, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Every submitted job's result once all (those submitted meanwhile too) have ended.

        Each is passed to ``on_result`` as it ends.
        """
        return gather(self._ended(), on_result)

    def _ended(self) -> Iterator[tuple[str, Callable[[], JobResult]]]:
        """``(trial id, get its result)`` of each task as it ends, until none is left."""
        while self._refs:
            ready, _ = ray.wait(list(self._refs), num_returns=1)
            yield self._refs.pop(ready[0]), partial(ray.get, ready[0])

    def close(self) -> None:
        """Cancel the tasks still running; stop the Ray instance this launcher started."""
        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            ray.shutdown()
            self._started = False
