"""Launchers: where a study's trials run. Each is a sibling module with a :class:`Launcher`.

A launcher runs :func:`~genae_lightning.studies.trial.execute` on
:class:`~genae_lightning.studies.trial.Job` s, somewhere, and tells the driver when they have
ended. It schedules nothing itself beyond that: which trials run, retries and "nothing twice"
are the store's (:mod:`~genae_lightning.studies.store`), so a launcher may run a job twice, lose
one, or run it on another machine, and the study stays correct. The protocol:

- ``submit(jobs)``: start the jobs (returns at once, or when they are queued);
- ``wait(on_result)``: block until every submitted job has ended, calling ``on_result`` with
  each :class:`~genae_lightning.studies.trial.JobResult` as it comes (``crashed`` for a job
  whose worker died); return them all (:func:`gather` does that from the jobs as they end).
  ``on_result`` may ``submit`` more jobs (the driver does, when a job's end lets more trials
  run): ``wait`` returns once those have ended too, so look for ended jobs among all those
  submitted, not among a list taken when ``wait`` began;
- ``close()``: release the workers.

The launchers: ``local`` (:mod:`~genae_lightning.studies.launchers.local`, a process pool on
this machine), ``slurm`` (:mod:`~genae_lightning.studies.launchers.slurm`, SLURM job arrays
through submitit) and ``ray`` (:mod:`~genae_lightning.studies.launchers.ray`, Ray tasks).
:func:`make_launcher` imports ``slurm`` and ``ray`` only when they are chosen, so genae needs
neither submitit nor Ray unless they are used. Their options are dataclasses here
(:class:`SlurmOptions`, :class:`RayOptions`), which ``genae study run`` offers as
``--<launcher>.<option>`` (:func:`add_launcher_arguments`, :func:`launcher_options`).

Adding one: write ``launchers/<name>.py`` with a class taking ``workers`` (and its options),
add its name to :data:`LAUNCHERS`, its options to :data:`LAUNCHER_OPTIONS` and a branch to
:func:`make_launcher`. ``Job`` and ``execute`` are picklable as they are; the job's ``threads``
is the launcher's to set (cores per task).
"""

import argparse
import json
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from genae_lightning.studies.launchers.base import Launcher, RayOptions, SlurmOptions, gather
from genae_lightning.studies.launchers.local import LocalLauncher

__all__ = ["LAUNCHERS", "LAUNCHER_OPTIONS", "Launcher", "RayOptions", "SlurmOptions",
           "add_launcher_arguments", "gather", "launcher_options", "make_launcher"]

# The launchers' names (``genae study run --launcher``); each is built by make_launcher.
LAUNCHERS = ("local", "slurm", "ray")
# launcher -> its options (``--<launcher>.<option>``)
LAUNCHER_OPTIONS: dict[str, type] = {"slurm": SlurmOptions, "ray": RayOptions}


def make_launcher(name: str, workers: int | None = None,
                  options: SlurmOptions | RayOptions | None = None) -> Launcher:
    """The launcher called ``name`` with ``workers`` workers and its ``options``.

    Raises:
        ValueError: No launcher has that name.
        TypeError: ``options`` are not that launcher's.
        ImportError: The launcher's package (submitit, Ray) is not installed; the message
            names the extra that installs it.
    """
    kind = LAUNCHER_OPTIONS.get(name)
    if options is not None and not (kind is not None and isinstance(options, kind)):
        raise TypeError(f"--launcher {name}: its options are "
                        f"{'none' if kind is None else kind.__name__}, not {options!r}")
    if name == "local":
        return LocalLauncher(workers)
    if name == "slurm":
        from genae_lightning.studies.launchers.slurm import SlurmLauncher

        return SlurmLauncher(workers, options)
    if name == "ray":
        from genae_lightning.studies.launchers.ray import RayLauncher

        return RayLauncher(workers, options)
    raise ValueError(f"--launcher {name!r}: expected one of {', '.join(LAUNCHERS)}")


def _parse(annotation: Any) -> Callable[[str], Any]:
    """How to read an option of this type from the command line (``X | None`` as ``X``)."""
    kind = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    return json.loads if (typing.get_origin(kind) or kind) is dict else kind


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every launcher's ``--<launcher>.<option>`` to ``parser``, a group per launcher."""
    for name, options in LAUNCHER_OPTIONS.items():
        group = parser.add_argument_group(f"--launcher {name}", options.__doc__.replace("``", ""))
        hints = typing.get_type_hints(options)
        for spec in fields(options):
            group.add_argument(f"--{name}.{spec.name}", dest=f"{name}.{spec.name}",
                               type=_parse(hints[spec.name]), default=None,
                               metavar=spec.name.upper(), help=spec.metadata["help"] + (
                                   "" if spec.default is None else f" (default: {spec.default})"))


def launcher_options(args: argparse.Namespace) -> SlurmOptions | RayOptions | None:
    """The options of ``args.launcher`` from the ``--<launcher>.<option>`` arguments given.

    Raises:
        ValueError: An option of another launcher was given.
    """
    given = {key: value for key, value in vars(args).items() if value is not None
             and key.split(".")[0] in LAUNCHER_OPTIONS and "." in key}
    others = sorted(f"--{key}" for key in given if key.split(".")[0] != args.launcher)
    if others:
        raise ValueError(f"{', '.join(others)}: not an option of --launcher {args.launcher}")
    options = LAUNCHER_OPTIONS.get(args.launcher)
    return None if options is None else options(
        **{key.split(".", 1)[1]: value for key, value in given.items()})
