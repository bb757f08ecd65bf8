"""A study's state on disk, safe for concurrent writers on many nodes (no database, no SQLite).

Layout of a study root::

    <root>/study.json              the study: name, file, settings, a random store id (written once)
    <root>/trials/<id>.json        one record per trial, always replaced whole (atomic)
    <root>/claims/<id>.claim       who runs the trial now (host, pid, token); its mtime is the
                                   heartbeat
    <root>/runs/<id>/              the trial's run folder: config.yaml, metrics.csv,
                                   checkpoints/, wandb/, fit.log, evaluation-<split>-*.json

Writes are atomic: a temporary file in the same folder, ``fsync``, then ``os.replace`` (a
reader sees the old record or the new one, never half of one); records are created with
``os.link`` so two drivers adding the same trial never overwrite each other. Only the holder of
a trial's claim writes its record.

**Claims.** A worker claims a trial by creating its claim file with ``O_CREAT | O_EXCL``: of any
number of processes racing, exactly one succeeds. The holder touches the file every few seconds
(:meth:`Claim.heartbeat`). A claim is stale when its process is dead (same host: the pid is gone
or belongs to a newer process) or its heartbeat is older than the lease (any host; hosts'
clocks must agree to well within the lease, as NTP keeps them). A stale claim is taken over by
renaming it aside (one rename wins) and creating a fresh one; a holder whose claim was taken
notices at its next heartbeat and stops without writing. So, short of a holder silent for longer
than the lease, one process at a time runs a trial and nothing is trained twice.

**Records** (``trials/<id>.json``): ``trial`` (the :class:`~genae_lightning.studies.plan.Trial`),
``state`` (``pending``, ``running``, ``done``, ``failed``), ``attempts`` (started), ``failures``
(a failed trial runs again while ``failures <= retries``), ``error`` (the last) and ``errors``
(every attempt's), ``worker`` (host, pid of the running attempt), and once done ``metrics``
(evaluation choice -> metric -> value), ``train_seconds``, ``steps``, ``checkpoint``,
``run_dir``, ``timings`` and the ``fit`` / ``evaluations`` details
(:mod:`~genae_lightning.studies.trial`).
"""

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("pending", "running", "done", "failed")
# Where a study lives unless --root says otherwise: <DEFAULT_ROOT>/<study name>
DEFAULT_ROOT = "outputs/studies"
DEFAULT_LEASE = 300.0  # seconds without a heartbeat after which a claim is stale
DEFAULT_HEARTBEAT = 20.0  # seconds between heartbeats


def write_json(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically: a temporary file, fsync, then ``os.replace``.

    The temporary name is unique per writer, so concurrent writers never touch each other's
    files (``methods.pretrained.write_atomically`` removes other writers' leftovers first, which
    suits a folder with one writer, not a shared store).
    """
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def create_json(path: Path, data: Any) -> bool:
    """Create ``path`` with ``data`` unless it exists (atomic: ``os.link`` of a full file).

    Returns:
        Whether this call created it.
    """
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write_json(temp, data)
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """The JSON data of ``path``, or None when it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def boot_id() -> str:
    """This machine's boot id (Linux), so two containers named alike are told apart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), None when there is no such process.

    Compared along with the pid, so a recycled pid is not taken for the claim's process. A
    process that has exited but is not yet reaped (a zombie, whose parent was killed with it)
    counts as no process: it holds nothing.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: only whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # field 3 onwards, after the command's name
    return None if fields[0] in ("Z", "X") else fields[19]  # state; start time (field 22)


def this_process() -> dict[str, Any]:
    """Host, boot id, pid and process start time of the calling process."""
    return {"host": socket.gethostname(), "boot": boot_id(), "pid": os.getpid(),
            "pid_start": process_start(os.getpid())}


@dataclass
class Claim:
    """A held claim on one trial. Heartbeat it; release it when done.

    Attributes:
        path: The claim file.
        token: This holder's random token (in the file).
    """

    path: Path
    token: str

    def held(self) -> bool:
        """Whether the claim file is still this holder's."""
        info = read_claim(self.path)
        return info is not None and info.get("token") == self.token

    def heartbeat(self) -> bool:
        """Touch the claim file (its mtime is the heartbeat); False when it is no longer held."""
        if not self.held():
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        return True

    def release(self) -> None:
        """Remove the claim file if it is still this holder's."""
        if self.held():
            self.path.unlink(missing_ok=True)


def read_claim(path: Path) -> dict[str, Any] | None:
    """A claim file's content; ``{}`` while it is being written; None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def claim_age(path: Path) -> float | None:
    """Seconds since the claim's last heartbeat, None when there is no claim."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def is_stale(info: dict[str, Any], age: float, lease: float) -> bool:
    """Whether a claim's holder is gone: dead on this host, or silent for longer than the lease."""
    if age > lease:
        return True
    me = this_process()
    if info.get("host") == me["host"] and info.get("boot") == me["boot"] and "pid" in info:
        start = process_start(int(info["pid"]))
        return start is None or (bool(start) and start != info.get("pid_start"))
    return False


class Store:
    """The on-disk state of one study (see the module's docstring for the layout).

    Args:
        root: The study's folder (created if missing).
        lease: Seconds without a heartbeat after which a claim is stale.
    """

    def __init__(self, root: str | Path, lease: float = DEFAULT_LEASE) -> None:
        self.root = Path(root)
        self.lease = lease
        for folder in ("trials", "claims", "runs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    # -- the study -----------------------------------------------------------------------------

    def init(self, study: dict[str, Any]) -> dict[str, Any]:
        """Record the study (first driver), or check that the root holds this study.

        Args:
            study: At least ``name``; written with a random ``store_id`` when new.

        Returns:
            The study record on disk.

        Raises:
            ValueError: The root holds another study.
        """
        path = self.root / "study.json"
        create_json(path, {**study, "store_id": uuid.uuid4().hex[:12], "created": time.time()})
        saved = read_json(path)
        if saved.get("name") != study.get("name"):
            raise ValueError(f"{self.root} holds the study {saved.get('name')!r}, not "
                             f"{study.get('name')!r}: pass another --root for this study")
        return saved

    # -- records -------------------------------------------------------------------------------

    def record_path(self, trial_id: str) -> Path:
        """``trials/<id>.json``."""
        return self.root / "trials" / f"{trial_id}.json"

    def run_dir(self, trial_id: str) -> Path:
        """``runs/<id>``: the trial's run folder."""
        return self.root / "runs" / trial_id

    def read(self, trial_id: str) -> dict[str, Any] | None:
        """A trial's record, None when it was never added."""
        return read_json(self.record_path(trial_id))

    def add(self, trial: dict[str, Any]) -> bool:
        """Add a ``pending`` record for a trial unless it has one (never overwrites)."""
        return create_json(self.record_path(trial["id"]), {
            "id": trial["id"], "trial": trial, "state": "pending", "attempts": 0,
            "failures": 0, "errors": [], "error": None})

    def write(self, record: dict[str, Any], claim: Claim) -> bool:
        """Replace a trial's record, if ``claim`` still holds the trial.

        Returns:
            Whether it was written (False: the claim was taken over; the record is the new
            holder's).
        """
        if not claim.held():
            return False
        record["updated"] = time.time()
        write_json(self.record_path(record["id"]), record)
        return True

    def records(self) -> dict[str, dict[str, Any]]:
        """Every trial record, by id."""
        out = {}
        for path in sorted((self.root / "trials").glob("*.json")):
            data = read_json(path)
            if data is not None:
                out[data["id"]] = data
        return out

    # -- claims --------------------------------------------------------------------------------

    def claim_path(self, trial_id: str) -> Path:
        """``claims/<id>.claim``."""
        return self.root / "claims" / f"{trial_id}.claim"

    def claim(self, trial_id: str) -> Claim | None:
        """Claim a trial: a fresh claim, or a stale one taken over; None when it is held."""
        path = self.claim_path(trial_id)
        claim = self._create(path)
        if claim is not None:
            return claim
        info, age = read_claim(path), claim_age(path)
        if info is None or age is None:  # released meanwhile
            return self._create(path)
        if not is_stale(info, age, self.lease):
            return None
        aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(path, aside)  # of several takers, one renames the stale claim
        except FileNotFoundError:
            return None
        moved = read_claim(aside) or {}
        if moved.get("token") != info.get("token"):  # a fresh claim replaced it meanwhile
            try:
                os.link(aside, path)  # put it back
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return None
        aside.unlink(missing_ok=True)
        return self._create(path)

    def _create(self, path: Path) -> Claim | None:
        token = uuid.uuid4().hex
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({**this_process(), "token": token, "claimed": time.time()}, file)
            file.flush()
            os.fsync(file.fileno())
        return Claim(path, token)

    def holder(self, trial_id: str) -> dict[str, Any] | None:
        """The live claim on a trial (its content), None when there is none or it is stale."""
        path = self.claim_path(trial_id)
        info, age = read_claim(path), claim_age(path)
        if info is None or age is None or is_stale(info, age, self.lease):
            return None
        return info

    def trial_ids(self) -> Iterator[str]:
        """Ids of every recorded trial."""
        return (p.stem for p in sorted((self.root / "trials").glob("*.json")))
