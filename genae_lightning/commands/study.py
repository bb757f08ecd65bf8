"""``genae study <subcommand>``: studies of configs, seeds, a selection grid and budgets.

``genae study run <study>`` runs (or continues) a study; ``genae study list`` lists the bundled
ones; ``genae study status <study>`` says where a study stands. Each subcommand is a function
``(argv) -> object`` in :data:`SUBCOMMANDS`, whose first docstring line (after ``genae study
<name>:``) is its help; a new one (``report``, ``dashboard``, ``status``) is a module of its own
with one entry added here.
"""

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from genae_lightning.studies.dashboard import dashboard_command
from genae_lightning.studies.definition import Study
from genae_lightning.studies.launchers import (
    LAUNCHERS,
    add_launcher_arguments,
    launcher_options,
    make_launcher,
)
from genae_lightning.studies.plan import (
    Trial,
    has_choice,
    known_trials,
    trial_counts,
)
from genae_lightning.studies.report import report_command
from genae_lightning.studies.run import Options, StudyState, preflight, run_study
from genae_lightning.studies.spec import available_studies, load_study
from genae_lightning.studies.status import status_command
from genae_lightning.studies.store import DEFAULT_HEARTBEAT, DEFAULT_LEASE, DEFAULT_ROOT
from genae_lightning.studies.trial import INTERRUPTED


def run_command(argv: list[str]) -> StudyState | None:
    """``genae study run``: run or continue a study (selection, test seeds, equal time)."""
    parser = argparse.ArgumentParser(prog="genae study run", description=run_command.__doc__)
    parser.add_argument("study", help="a bundled study's name (`genae study list`) or a file")
    parser.add_argument("--launcher", default="local", choices=LAUNCHERS,
                        help="where trials run (default: local, a process pool; slurm: SLURM "
                             "job arrays through submitit; ray: Ray tasks)")
    parser.add_argument("--workers", type=int, default=None,
                        help="trials at once (local: default one per core; each gets "
                             "cores // workers torch threads; slurm: tasks of one array at once, "
                             "default 256; ray: not used)")
    parser.add_argument("--root", default=None,
                        help=f"the study's folder (default: {DEFAULT_ROOT}/<study name>); "
                             "run again with the same root to continue")
    parser.add_argument("--retries", type=int, default=2,
                        help="runs of a failed trial after its first (default 2)")
    parser.add_argument("--data_root", default=None,
                        help="where the datasets lie on this machine (data.init_args.root of "
                             "every run; not part of the trials' settings)")
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE,
                        help="seconds without a heartbeat after which a worker's claim on a "
                             "trial is taken over")
    parser.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT,
                        help="seconds between a worker's heartbeats")
    parser.add_argument("--poll", type=float, default=5.0,
                        help="seconds between looks at trials that other drivers run")
    parser.add_argument("--dry_run", action="store_true",
                        help="list every trial the study would run, with counts: the `genae "
                             "fit` arguments of those known before running (selection trials, "
                             "test trials of configs with nothing to select), the others per "
                             "config; run and check nothing")
    add_launcher_arguments(parser)
    args = parser.parse_args(argv)
    if args.retries < 0:
        parser.error(f"--retries must be 0 or more, got {args.retries}")
    study = load_study(args.study)
    root = Path(args.root or Path(DEFAULT_ROOT) / study.name)
    if args.dry_run:
        print("\n".join(dry_run(study, root)))
        return None
    preflight(study)  # the FID features, before a launcher starts or a trial runs
    launcher = make_launcher(args.launcher, args.workers, launcher_options(args))
    print(f"study {study.name} ({study.source}) in {root}: launcher {launcher.name}, "
          f"{getattr(launcher, 'workers', '?')} worker(s) of {launcher.threads} thread(s)",
          flush=True)
    options = Options(args.retries, args.lease, args.heartbeat, args.poll, args.data_root)
    start, stopped = time.monotonic(), False
    try:
        with sigterm_as_ctrl_c():
            state = run_study(study, root, launcher, options,
                              log=lambda line: print(line, flush=True), check=False)
    except KeyboardInterrupt:
        stopped = True
        print(f"study {study.name}: stopping (a signal): the running trials are stopped (local "
              "and slurm: their fits save a checkpoint first); a second signal stops at once",
              file=sys.stderr, flush=True)
    finally:
        launcher.close()  # on a stop, waits for the running fits' checkpoints (local)
    if stopped:
        print(f"study {study.name}: stopped; run the same command again to continue (`genae "
              f"study status {args.study} --root {root}` says where each trial stands)",
              file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED)
    wall, busy = time.monotonic() - start, state.busy_seconds()
    workers = getattr(launcher, "workers", 1)
    print(f"study {study.name}: {state.count('done')} of {len(state.trials)} trial(s) done, "
          f"{state.count('failed')} failed; records in {root / 'trials'}", flush=True)
    if busy:
        print(f"wall time {wall:.0f} s; the trials run here took {busy:.0f} s of fit and "
              f"evaluation, {busy / workers:.0f} s over {workers} worker(s) "
              f"({busy / workers / wall:.0%} busy)", flush=True)
    return state


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler stopping the driver) stops the study as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def dry_run(study: Study, root: Path) -> list[str]:
    """``genae study run --dry_run``'s lines: every trial the study would run, with counts.

    Known before running, with their ``genae fit`` arguments: the selection trials and the test
    trials of the configs with nothing to select. Known by count: the test trials of a config
    with a choice (its selected setting, once its selection trials are done) and the equal-time
    trials (once the references' test trials are done: their budget is the references' time).
    """
    def where(dataset: str | None) -> str:
        return f" on {dataset}" if dataset else ""

    def seeds() -> str:
        return ", ".join(map(str, study.seeds))

    def fit_line(trial: Trial) -> str:
        if trial.reuses is not None:
            return f"  {trial.id}: no fit, evaluates the run of {trial.reuses}"
        return f"  {trial.id}: genae {' '.join(trial.fit_args(root / 'runs' / trial.id))}"

    selection, known = known_trials(study)  # known now; then the configs with a choice:
    later = [(m, d) for d in study.datasets for m in study.methods if has_choice(study, m)]
    per_config = len(study.max_steps) * len(study.seeds)
    timed: list[tuple[str, str | None]] = []
    if study.equal_time is not None:
        timed = [(m.label, d.label) for d in study.datasets for m in study.methods
                 if m.label not in study.equal_time.reference]
    per_timed = len(study.equal_time.steps) * len(study.seeds) if study.equal_time else 0
    counts = trial_counts(study, (selection, known))
    lines = [f"study {study.name} ({study.source}) in {root}: {counts.total} trial(s): "
             f"{counts.selection} selection, {counts.test} test ({counts.test_known} known now, "
             f"{counts.test_later} once their config's selection is decided), "
             f"{counts.equal_time} equal time"]
    if selection:
        lines.append(f"selection: {len(selection)} trial(s), seed {study.selection_seed} at "
                     f"{study.selection_steps} steps, scored on validation "
                     f"({study.selection_metric}, {study.selection_mode})")
        lines += [fit_line(t) for t in selection]
    if known:
        lines.append(f"test, known now: {len(known)} trial(s) of the configs with nothing to "
                     f"select, seeds {seeds()} at {', '.join(map(str, study.max_steps))} steps, "
                     "scored on test")
        lines += [fit_line(t) for t in known]
    if later:
        lines.append(f"test, once the config's selection is decided: {len(later) * per_config} "
                     "trial(s) of the selected setting, scored on test")
        for method, dataset in later:
            reused = (f"; seed {study.selection_seed} at {study.selection_steps} steps "
                      "evaluates its selection run (no fit)"
                      if study.selection_steps in study.max_steps else "")
            lines.append(f"  {method.label}{where(dataset.label)}: {per_config} trial(s), "
                         f"seeds {seeds()} at {', '.join(map(str, study.max_steps))} "
                         f"steps{reused}")
    if timed:
        equal = study.equal_time
        assert equal is not None
        factor = equal.max_steps_factor
        lines.append(f"equal time, after the references ({', '.join(equal.reference)}) finish "
                     f"their test trials: {len(timed) * per_timed} trial(s), each trained for "
                     "the slowest reference's median training time")
        for label, dataset in timed:
            budgets = ", ".join(f"their time at {s} steps (stopping at {s * factor} steps at "
                                "most)" for s in equal.steps)
            lines.append(f"  {label}{where(dataset)}: {per_timed} trial(s), seeds {seeds()}, "
                         f"{budgets}")
    return lines


def list_command(argv: list[str]) -> dict[str, Path]:
    """``genae study list``: the bundled studies and their descriptions."""
    argparse.ArgumentParser(prog="genae study list", description=list_command.__doc__
                            ).parse_args(argv)
    studies = available_studies()
    width = max(map(len, studies), default=0)
    for name, path in studies.items():
        description = load_study(path, check_classes=False).description
        print(f"{name:<{width}}  {description}")
    return studies


# name -> function(argv); its docstring's first line is its help
SUBCOMMANDS: dict[str, Callable[[list[str]], object]] = {
    "run": run_command,
    "list": list_command,
    "status": status_command,
    "report": report_command,
    "dashboard": dashboard_command,
}


def study(argv: list[str]) -> object:
    """``genae study``: run and list studies (seeds, selection on validation, equal budgets)."""
    helps = {name: (f.__doc__ or "").split(":", 1)[-1].strip().split("\n")[0]
             for name, f in SUBCOMMANDS.items()}
    usage = (f"usage: genae study {{{','.join(SUBCOMMANDS)}}} ...\n\nsubcommands:\n"
             + "\n".join(f"  {name:<6}  {text}" for name, text in helps.items()))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return None
    if argv[0] not in SUBCOMMANDS:
        raise SystemExit(f"{usage}\ngenae study: error: unknown subcommand {argv[0]!r}; "
                         f"expected one of {', '.join(SUBCOMMANDS)}")
    return SUBCOMMANDS[argv[0]](argv[1:])
