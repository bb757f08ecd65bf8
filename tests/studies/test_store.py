"""The store: atomic records, exclusive claims, stale claims taken over, lost claims refused."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from genae_lightning.studies.store import (
    Store,
    create_json,
    process_start,
    read_claim,
    read_json,
    this_process,
    write_json,
)
from tests.conftest import REPO

RACE = """
import sys, time
from genae_lightning.studies.store import Store
store = Store(sys.argv[1], lease=float(sys.argv[2]))
while time.time() < float(sys.argv[3]):  # start together
    pass
claim = store.claim("trial")
print("won" if claim else "lost", flush=True)
time.sleep(1.0)  # hold it while the others try
"""


def race(root: Path, processes: int, lease: float = 300.0) -> list[str]:
    """``processes`` processes claim one trial at the same moment; their outcomes."""
    start = str(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(root), str(lease), start],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [p.communicate(timeout=60)[0].strip() for p in procs]


def fake_claim(store: Store, trial_id: str, age: float = 0.0, **info) -> Path:
    path = store.claim_path(trial_id)
    path.write_text(json.dumps({"token": "theirs", **info}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_of_many_racing_processes_exactly_one_claims(tmp_path) -> None:
    outcomes = race(tmp_path, 8)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_of_many_processes_racing_for_a_stale_claim_exactly_one_takes_it(tmp_path) -> None:
    store = Store(tmp_path)
    fake_claim(store, "trial", age=1000, host="elsewhere", pid=1)
    assert sorted(race(tmp_path, 6)) == ["lost"] * 5 + ["won"]


def test_records_are_written_whole_and_never_overwritten_by_add(tmp_path) -> None:
    path = tmp_path / "record.json"
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            write_json(path, {"writer": n, "i": i, "pad": "x" * 20000})
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        reads = 0
        while reads < 300:
            data = read_json(path)
            if data is not None:
                assert len(data["pad"]) == 20000
                reads += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary files left
    assert not create_json(path, {"other": 1}) and "pad" in read_json(path)


def test_a_claim_is_held_beaten_and_released(tmp_path) -> None:
    store = Store(tmp_path)
    claim = store.claim("t")
    assert claim is not None and claim.held() and store.claim("t") is None
    assert store.holder("t")["pid"] == os.getpid()
    os.utime(claim.path, (0, 0))
    assert claim.heartbeat() and time.time() - claim.path.stat().st_mtime < 5
    claim.release()
    assert not claim.path.exists() and store.holder("t") is None
    assert store.claim("t") is not None


def test_stale_claims_are_taken_over_and_live_ones_kept(tmp_path) -> None:
    store = Store(tmp_path, lease=60)
    me = this_process()
    here = {"host": me["host"], "boot": me["boot"]}
    fake_claim(store, "dead", pid=dead_pid(), pid_start="1", **here)
    fake_claim(store, "recycled", pid=os.getpid(), pid_start="not-mine", **here)
    fake_claim(store, "silent", age=120, host="elsewhere", pid=1)
    fake_claim(store, "alive", pid=os.getpid(), pid_start=me["pid_start"], **here)
    fake_claim(store, "remote", age=5, host="elsewhere", pid=1)
    fake_claim(store, "writing", age=5)
    for trial in ("dead", "recycled", "silent"):
        claim = store.claim(trial)
        assert claim is not None and read_claim(claim.path)["token"] == claim.token, trial
    for trial in ("alive", "remote", "writing"):
        assert store.claim(trial) is None, trial
    assert socket.gethostname() == me["host"]


def test_an_exited_unreaped_holder_holds_nothing(tmp_path) -> None:
    """A worker killed with its driver stays a zombie until reaped: its claim is stale at once."""
    store = Store(tmp_path, lease=60)
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not waited for yet
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert process_start(child.pid) is None
        me = this_process()
        fake_claim(store, "zombie", pid=child.pid, pid_start="1", host=me["host"],
                   boot=me["boot"])
        assert store.claim("zombie") is not None
    finally:
        child.wait()
    assert process_start(os.getpid()) == this_process()["pid_start"]  # the living keep theirs


def test_a_holder_whose_claim_was_taken_over_cannot_write(tmp_path) -> None:
    store = Store(tmp_path, lease=60)
    store.add({"id": "t"})
    old = store.claim("t")
    os.utime(old.path, (time.time() - 120, time.time() - 120))  # silent past the lease
    new = store.claim("t")
    assert new is not None and not old.held() and not old.heartbeat()
    record = store.read("t")
    assert not store.write({**record, "state": "done"}, old)
    assert store.write({**record, "state": "running"}, new)
    old.release()  # not its claim any more: nothing removed
    assert new.held() and store.read("t")["state"] == "running"


def test_a_root_holds_one_study(tmp_path) -> None:
    first = Store(tmp_path).init({"name": "a"})
    assert Store(tmp_path).init({"name": "a"})["store_id"] == first["store_id"]
    try:
        Store(tmp_path).init({"name": "b"})
    except ValueError as err:
        assert "holds the study 'a'" in str(err)
    else:
        raise AssertionError("another study's root was accepted")


def test_a_worker_that_loses_its_claim_kills_its_fit(tmp_path) -> None:
    """Another driver took the trial over: the first one's fit stops, so no two fits write it."""
    from genae_lightning.studies import trial

    store = Store(tmp_path, lease=60)
    store.add({"id": "t"})
    claim = store.claim("t")
    fit = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    trial._RUNNING_FITS.append(fit)
    beat = trial.Heartbeat(claim, every=0.05)
    try:
        beat.start()
        time.sleep(0.3)
        assert fit.poll() is None and not beat.lost.is_set()  # held: the fit runs on
        claim.path.unlink()  # as a takeover does (another driver found it stale)
        assert store.claim("t") is not None
        assert fit.wait(timeout=10) == -9 and beat.lost.wait(timeout=10)
    finally:
        beat.stopped.set()
        trial._RUNNING_FITS.remove(fit)
        if fit.poll() is None:
            fit.kill()
