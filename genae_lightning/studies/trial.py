"""Run one trial as a normal run: ``genae fit`` in a fresh process, then ``genae evaluate``.

:func:`execute` is what every launcher runs, once per :class:`Job` (picklable: a process pool,
submitit and Ray ship it as it is). It claims the trial in the store, so a job whose trial is
held elsewhere, done, or out of retries returns at once, then:

1. **fit**: ``python -m genae_lightning.cli fit <the trial's arguments>`` in a fresh
   subprocess writing the trial's run folder (``runs/<id>/``; output in ``fit.log``), with
   ``OMP_NUM_THREADS`` set to the job's threads. A trial that was stopped (killed worker, node
   lost, exit 3 after SIGTERM) resumes from its newest ``last.ckpt`` / ``interrupted.ckpt``.
   The subprocess dies with its worker (Linux: ``PR_SET_PDEATHSIG``), so a killed worker
   leaves no training behind. The fit's callbacks get
   :class:`~genae_lightning.studies.final_checkpoint.FinalCheckpoint`, so its
   ``checkpoints/last.ckpt`` holds the final weights (whatever the checkpoint interval, and for
   a trial stopped by ``max_time``); the record's ``steps`` are that checkpoint's, and a
   checkpoint of another step than the fit ended at fails the trial. A trial that reuses
   another's run (the selection seed's test) skips this step and reads that run's checkpoint.
2. **evaluate**: :func:`genae_lightning.commands.evaluate.evaluate` in this process, on the
   trial's split, once per ``recalibrate_batchnorm`` choice, writing
   ``evaluation-<split>-recalibrate_batchnorm=<n>.json`` into the run folder.

The record (:mod:`~genae_lightning.studies.store`) gets ``metrics`` (choice -> key -> value),
``train_seconds`` (Lightning's ``Timer``, summed over resumes), ``steps``, ``checkpoint``,
``run_dir``, ``wandb_id`` (its W&B run's id, when it has one), ``fit`` (arguments, exit codes,
checkpoints resumed from) and ``timings``:
``start_seconds`` (process start until the run announced its folder: imports, config, model
and data set-up), ``fit_seconds`` (the fit processes' wall time), ``overhead_seconds``
(``fit_seconds - train_seconds``: start, data loading, end-of-fit priors) and
``eval_seconds``; ``environments``: per attempt, the code (genae version, git commit), torch,
Lightning and Python versions, threads and machine it ran with (:func:`environment`).
"""

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genae_lightning.checkpoints.reading import read_checkpoint
from genae_lightning.commands.evaluate import evaluate
from genae_lightning.commands.resume import LAST_PATTERNS
from genae_lightning.studies.final_checkpoint import FinalCheckpoint  # noqa: F401  (see fit_args)
from genae_lightning.studies.plan import FINAL_CHECKPOINT, Trial, variant
from genae_lightning.studies.store import (
    DEFAULT_HEARTBEAT,
    DEFAULT_LEASE,
    Claim,
    Store,
    read_json,
    this_process,
)

INTERRUPTED = 3  # genae fit's exit status after SIGTERM / Ctrl-C with a resumable checkpoint
RUN_FOLDER_LINE = "genae fit: run folder"  # printed once the run is set up
DONE_LINE = re.compile(r"genae fit: done in .*\((\d+) steps\)")  # printed at the end of fit


@dataclass(frozen=True)
class Job:
    """What a launcher runs: one trial of one store.

    Attributes:
        root: The study's root folder (the store).
        trial_id: The trial.
        retries: A failed trial runs again while its failures are at most this many.
        lease: Seconds without a heartbeat after which a claim is stale.
        heartbeat: Seconds between heartbeats.
        threads: Torch / OpenMP threads of the fit and the evaluation (None: torch's default).
        data_root: ``data.init_args.root`` of every fit and evaluation (where the data lies on
            this machine; not part of the trial's id), or None for the configs' own.
        feature_extractor_weights_path: The Inception weights file of every evaluation (the
            study's ``evaluation.feature_extractor_weights_path``; not part of the trial's id),
            or None: the torch.hub cache.
        own_session: Start the fit in a session of its own, so that a signal to the worker's
            process group (Ctrl-C in a terminal) does not reach it: the worker forwards one
            with :func:`stop_this_worker` (the local launcher). False: the fit shares the
            worker's group (SLURM and Ray signal the fit themselves).
    """

    root: str
    trial_id: str
    retries: int = 2
    lease: float = DEFAULT_LEASE
    heartbeat: float = DEFAULT_HEARTBEAT
    threads: int | None = None
    data_root: str | None = None
    feature_extractor_weights_path: str | None = None
    own_session: bool = False


@dataclass(frozen=True)
class JobResult:
    """How a job ended.

    Attributes:
        trial_id: The trial.
        outcome: ``done``; ``failed`` (recorded, retried while retries are left);
            ``interrupted`` (stopped by a signal, resumes); ``skipped`` (held elsewhere, already
            done or out of retries); ``lost`` (its claim was taken over); ``crashed`` (the
            worker died; set by launchers).
        detail: The error, or why it was skipped.
    """

    trial_id: str
    outcome: str
    detail: str = ""


class TrialError(RuntimeError):
    """A trial that failed (recorded with this message, retried while retries are left)."""


class Interrupted(RuntimeError):
    """A fit stopped by a signal with a resumable checkpoint; the trial resumes later."""


class ClaimLost(RuntimeError):
    """Another worker took the trial over (this one was silent for longer than the lease)."""


def thread_environment(threads: int | None) -> dict[str, str]:
    """The environment that gives a process ``threads`` torch / OpenMP / MKL threads.

    Torch reads it when it starts; nothing for None (torch's default: one per core).
    """
    return {} if not threads else {name: str(threads)
                                   for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that kills the child when its parent dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork

    def die_with_parent() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return die_with_parent


DIE_WITH_PARENT = _parent_death_signal()

STOPPING = threading.Event()  # this worker was asked to stop: no new trial, its fit checkpoints
_RUNNING_FITS: list[subprocess.Popen] = []  # the fit this process runs, if any
_IN_TRIAL = threading.Event()  # this process is running a trial (fitting or evaluating)


def stop_this_worker() -> None:
    """Ask this worker process to stop (the local launcher's handler of SIGINT and SIGTERM).

    The first call sends the running fit SIGTERM: it finishes its step, saves
    ``interrupted.ckpt`` and exits with status 3, and its trial is recorded ``pending`` (it
    resumes). A trial that is evaluating is interrupted the same way (``KeyboardInterrupt``);
    a job that starts later returns at once. Later calls do nothing (a second SIGTERM would
    stop the fit without its checkpoint).
    """
    if STOPPING.is_set():
        return
    STOPPING.set()
    fits = [p for p in _RUNNING_FITS if p.poll() is None]
    for process in fits:
        process.send_signal(signal.SIGTERM)
    if not fits and _IN_TRIAL.is_set():
        raise KeyboardInterrupt


class Heartbeat(threading.Thread):
    """Touches a claim every ``every`` seconds; when the claim is lost, kills the fit."""

    def __init__(self, claim: Claim, every: float) -> None:
        super().__init__(daemon=True, name="study-heartbeat")
        self.claim, self.every = claim, every
        self.lost, self.stopped = threading.Event(), threading.Event()

    def run(self) -> None:
        """Beat until stopped or lost."""
        while not self.stopped.wait(self.every):
            if not self.claim.heartbeat():
                self.lost.set()
                for process in _RUNNING_FITS:  # this process's fit (one trial at a time)
                    if process.poll() is None:
                        process.kill()
                return


def git_revision(path: Path) -> str | None:
    """The commit checked out where ``path`` lies, or None (not a git checkout, no git)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(threads: int | None) -> dict[str, Any]:
    """What a trial's numbers depend on besides its settings: code, versions, threads, CPU.

    The same settings train bit-identical weights only with the same code, torch and number
    of threads (a reduction over 2 threads rounds differently than over 1), so each attempt's
    record keeps them; ``genae study report`` says when a study's trials differ in them.
    """
    import platform

    import lightning

    import genae_lightning

    return {"genae": genae_lightning.__version__,
            "git": git_revision(Path(genae_lightning.__file__).parent),
            "torch": torch.__version__, "lightning": lightning.__version__,
            "python": platform.python_version(),
            "threads": threads or torch.get_num_threads(),
            "machine": platform.machine(), "host": platform.node()}


def execute(job: Job) -> JobResult:
    """Claim the job's trial and run it (fit, evaluate), recording the outcome in the store."""
    if STOPPING.is_set():
        return JobResult(job.trial_id, "skipped", "this worker was asked to stop")
    store = Store(job.root, job.lease)
    claim = store.claim(job.trial_id)
    if claim is None:
        return JobResult(job.trial_id, "skipped", "claimed by another worker")
    beat = Heartbeat(claim, job.heartbeat)
    beat.start()
    _IN_TRIAL.set()
    try:
        return _run_claimed(store, claim, beat, job)
    finally:
        _IN_TRIAL.clear()
        beat.stopped.set()
        claim.release()


def _run_claimed(store: Store, claim: Claim, beat: Heartbeat, job: Job) -> JobResult:
    record = store.read(job.trial_id)
    if record is None or record["state"] == "done":
        return JobResult(job.trial_id, "skipped", "no record" if record is None else "done")
    if record["state"] == "running":  # the previous holder stopped without finishing
        worker = record.get("worker") or {}
        _fail(record, f"the worker (host {worker.get('host')}, pid {worker.get('pid')}) "
                      "stopped during the trial (killed or lost); resuming from its checkpoint")
    if record["failures"] > job.retries:
        record["state"] = "failed"
        store.write(record, claim)
        return JobResult(job.trial_id, "skipped", f"out of retries: {record['error']}")
    record.update(state="running", attempts=record["attempts"] + 1, worker=this_process())
    record.setdefault("environments", []).append(
        {"attempt": record["attempts"], **environment(job.threads)})
    if not store.write(record, claim):
        return JobResult(job.trial_id, "lost", "claim taken over")
    if job.threads:
        torch.set_num_threads(job.threads)
    trial = Trial.from_json(record["trial"])
    try:
        TrialRun(store, claim, beat, job, trial, record).run()
        record.update(state="done", error=None)
        outcome = JobResult(job.trial_id, "done")
    except (Interrupted, KeyboardInterrupt) as err:
        record.update(state="pending", error=str(err) or "interrupted (Ctrl-C)")
        outcome = JobResult(job.trial_id, "interrupted", record["error"])
    except ClaimLost as err:
        return JobResult(job.trial_id, "lost", str(err))
    except Exception as err:  # any error of the trial is recorded; the study goes on
        _fail(record, f"{type(err).__name__}: {err}")
        outcome = JobResult(job.trial_id, "failed", record["error"])
    record.pop("worker", None)
    if not store.write(record, claim):
        return JobResult(job.trial_id, "lost", "claim taken over before the record was written")
    return outcome


def _fail(record: dict[str, Any], error: str) -> None:
    record["failures"] += 1
    record["errors"].append({"attempt": record["attempts"], "error": error, "time": time.time()})
    record.update(state="failed", error=error)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``last.ckpt`` / ``interrupted.ckpt`` of a run folder (what a resume reads)."""
    found = [p for pattern in LAST_PATTERNS for p in (run_dir / "checkpoints").glob(pattern)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


class TrialRun:
    """The steps of one attempt at a trial; updates ``record`` as it goes."""

    def __init__(self, store: Store, claim: Claim, beat: Heartbeat, job: Job, trial: Trial,
                 record: dict[str, Any]) -> None:
        self.store, self.claim, self.beat, self.job = store, claim, beat, job
        self.trial, self.record = trial, record
        self.timings: dict[str, float] = record.setdefault("timings", {})
        self.fit_steps: int | None = None  # the steps the fit said it ended at

    def save(self) -> None:
        """Write the record so far (a later crash keeps it); stop if the claim was taken."""
        if self.beat.lost.is_set() or not self.store.write(self.record, self.claim):
            raise ClaimLost("another worker took the trial over")

    def run(self) -> None:
        """Fit (or reuse a run), then evaluate every choice."""
        if self.trial.reuses is not None:
            self.reuse(self.trial.reuses)
        elif not (self.record.get("fit") or {}).get("done"):
            self.fit()
        self.evaluate()

    def reuse(self, trial_id: str) -> None:
        """Take the checkpoint, time and steps of the trial whose run this one evaluates."""
        source = self.store.read(trial_id)
        if source is None or source.get("state") != "done":
            raise TrialError(f"the run of trial {trial_id}, which this trial evaluates, is not "
                             "done; run the study's selection phase first")
        for key in ("checkpoint", "run_dir", "train_seconds", "steps", "wandb_id"):
            self.record[key] = source.get(key)
        self.record["reused"] = trial_id
        self.timings.update({k: v for k, v in (source.get("timings") or {}).items()
                             if k != "eval_seconds"})

    def fit(self) -> None:
        """``genae fit`` in a subprocess, resuming the run folder's checkpoint if it has one."""
        run_dir = self.store.run_dir(self.trial.id)
        run_dir.mkdir(parents=True, exist_ok=True)
        store_id = (read_json(self.store.root / "study.json") or {}).get("store_id", "study")
        wandb_id = f"{store_id}-{self.trial.id.rsplit('-', 1)[-1]}"
        args = self.trial.fit_args(run_dir, wandb_id)
        if self.trial.wandb is not None:
            self.record["wandb_id"] = wandb_id
        if self.job.data_root is not None:
            args.append(f"--data.init_args.root={self.job.data_root}")
        resume = last_checkpoint(run_dir)
        if resume is not None:
            args.append(f"--ckpt_path={resume}")
        fit = self.record.setdefault("fit", {"exit_codes": [], "resumed_from": [],
                                             "seconds": 0.0})
        fit.update(args=args)
        if resume is not None:
            fit["resumed_from"].append(str(resume))
        code, seconds, start = self.subprocess(args, run_dir / "fit.log")
        fit["exit_codes"].append(code)
        fit["seconds"] += seconds
        self.timings.update(start_seconds=start, fit_seconds=round(fit["seconds"], 2))
        if self.beat.lost.is_set():
            raise ClaimLost("another worker took the trial over during its fit")
        if code == INTERRUPTED or code in (-signal.SIGTERM, -signal.SIGINT):
            self.save()
            raise Interrupted(f"genae fit was interrupted (exit {code}); it resumes from "
                              f"{last_checkpoint(run_dir)}")
        if code != 0:
            self.save()
            raise TrialError(f"genae fit exited with status {code}: "
                             f"{tail(run_dir / 'fit.log')} (full output: {run_dir / 'fit.log'})")
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            self.save()
            raise TrialError(f"genae fit left no {checkpoint}, which the trial evaluates; keep "
                             f"{FINAL_CHECKPOINT} in the fit's callbacks (Trial.fit_args "
                             "appends it)")
        saved = read_checkpoint(checkpoint)
        if self.fit_steps is not None and saved.get("global_step") != self.fit_steps:
            self.save()
            raise TrialError(
                f"{checkpoint} holds the weights of step {saved.get('global_step')}, but the fit "
                f"ended at step {self.fit_steps}: evaluating it would score stale weights. Keep "
                f"{FINAL_CHECKPOINT} in the fit's callbacks (Trial.fit_args appends it; it "
                "writes the final weights at the end of training) and do not write last.ckpt "
                "after it")
        timer = (saved.get("callbacks") or {}).get("Timer") or {}
        train = (timer.get("time_elapsed") or {}).get("train")
        fit["done"] = True
        self.record.update(checkpoint=self.relative(checkpoint), run_dir=self.relative(run_dir),
                           steps=saved.get("global_step"),
                           train_seconds=None if train is None else round(float(train), 2))
        if train is not None:
            self.timings["overhead_seconds"] = round(fit["seconds"] - float(train), 2)
        self.save()

    def relative(self, path: Path) -> str:
        """``path`` relative to the store's root (records stay valid when the root moves)."""
        return str(path.relative_to(self.store.root))

    def subprocess(self, args: list[str], log: Path) -> tuple[int, float, float | None]:
        """Run ``genae fit``; returns its exit code, wall seconds and start-up seconds."""
        env = {**os.environ, **thread_environment(self.job.threads), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "genae_lightning.cli", *args]
        start, announced = time.monotonic(), None
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(command)}\n")
            process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=env, text=True,
                                       start_new_session=self.job.own_session,
                                       preexec_fn=DIE_WITH_PARENT)  # noqa: PLW1509
            _RUNNING_FITS.append(process)
            if STOPPING.is_set():  # asked to stop while it started
                process.send_signal(signal.SIGTERM)
            self.record["worker"]["child"] = process.pid
            self.save()
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    out.write(line)
                    if announced is None and line.startswith(RUN_FOLDER_LINE):
                        announced = round(time.monotonic() - start, 2)
                    if (done := DONE_LINE.match(line)) is not None:
                        self.fit_steps = int(done.group(1))
                code = process.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the fit too: it saves interrupted.ckpt
                process.wait()
                raise Interrupted("interrupted (Ctrl-C); the fit resumes from its checkpoint"
                                  ) from None
            finally:
                _RUNNING_FITS.remove(process)
                process.stdout.close()
        return code, time.monotonic() - start, announced

    def evaluate(self) -> None:
        """``genae evaluate`` of the checkpoint on the trial's split, once per choice."""
        checkpoint = self.store.root / self.record["checkpoint"]
        run_dir = self.store.root / self.record["run_dir"]
        metrics = self.record.setdefault("metrics", {})
        evaluations = self.record.setdefault("evaluations", {})
        total = 0.0
        for choice in self.trial.evaluation.recalibrate_batchnorm:
            name = variant(choice)
            out = run_dir / f"evaluation-{self.trial.split}-{name}.json"
            args = self.trial.evaluate_args(checkpoint, choice, out)
            if self.job.data_root is not None:
                args.append(f"--data.init_args.root={self.job.data_root}")
            if self.job.feature_extractor_weights_path is not None:
                args.append("--feature_extractor_weights_path="
                            f"{self.job.feature_extractor_weights_path}")
            start = time.monotonic()
            with open(run_dir / "evaluate.log", "a", encoding="utf-8") as log, \
                    contextlib.redirect_stdout(log):
                print(f"\n$ genae evaluate {' '.join(args)}", flush=True)
                result = evaluate(args)
            seconds = round(time.monotonic() - start, 2)
            total += seconds
            metrics[name] = result["metrics"]
            evaluations[name] = {"file": self.relative(out), "seconds": seconds,
                                 "global_step": result["global_step"],
                                 "batchnorm": result["batchnorm"]}
        self.timings["eval_seconds"] = round(total, 2)
        self.save()


def tail(log: Path, lines: int = 6) -> str:
    """The last lines of a log, joined (the error a failed fit printed)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    return " | ".join(line.strip() for line in text[-lines:])
