"""One measurement per board at a time: the lock a target holds while it is open (targets/boardlock.py and
the runner's lock mode), with real processes holding and waiting for a real flock."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from targets.base import RUNNER_PATH
from targets.boardlock import BoardLock, describe
from targets.errors import TargetError
from targets.factory import lock_timeout
from targets.local import LocalTarget

ROOT = Path(__file__).resolve().parents[1]
RUNNER = [sys.executable, str(RUNNER_PATH), "-"]

# Another edgebench: a process of its own that takes the board and holds it until its stdin closes.
HOLDER = """
import sys
from targets.boardlock import BoardLock
lock = BoardLock(sys.argv[1:], "board", sys.stdin.readline().strip())
lock.acquire(30, print)
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def other_edgebench(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, *RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdin.write(f"{path}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_edgebench_waits_names_the_holder_and_gets_the_board_when_it_is_free(tmp_path):
    path = tmp_path / "board.lock"
    first = other_edgebench(path)
    said: list[str] = []
    lock = BoardLock(RUNNER, "pi@board", str(path))
    got: list[dict] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(30, said.append)))
    waiter.start()
    time.sleep(1.0)
    assert not got, "the board was taken while another edgebench held it"
    assert said and f"pid {first.pid}" in said[0] and "waiting" in said[0] and "pi@board is in use by" in said[0]
    first.stdin.close()  # the other edgebench finishes
    first.wait(10)
    waiter.join(10)
    assert got, "the board stayed locked after its holder finished"
    info = got[0]
    assert info["waited_s"] >= 0.9 and [h["pid"] for h in info["waited_for"]] == [first.pid]
    assert info["holder"]["pid"] == os.getpid() and info["file"] == str(path)
    assert "after waiting" in said[-1] and f"pid {first.pid}" in said[-1]
    assert json.loads(path.read_text())["pid"] == os.getpid()  # the file names the holder for the next one
    lock.release()


def test_it_gives_up_after_the_lock_timeout_with_who_holds_the_board(tmp_path):
    path = tmp_path / "board.lock"
    first = other_edgebench(path)
    try:
        start = time.monotonic()
        with pytest.raises(TargetError) as err:
            BoardLock(RUNNER, "pi@board", str(path)).acquire(0.5, lambda m: None)
        assert time.monotonic() - start < 10
        message = str(err.value)
        assert "still in use by" in message and f"pid {first.pid}" in message and "--lock-timeout" in message
    finally:
        first.stdin.close()
        first.wait(10)


def test_a_killed_edgebench_leaves_no_board_locked(tmp_path):
    path = tmp_path / "board.lock"
    first = other_edgebench(path)
    os.kill(first.pid, signal.SIGKILL)  # no release: the kernel closes its pipe, the lock runner sees the end
    first.wait(10)
    info = BoardLock(RUNNER, "pi@board", str(path)).acquire(10, lambda m: None)
    assert info["holder"]["pid"] == os.getpid()


def test_one_edgebench_naming_a_board_twice_is_told_so_instead_of_waiting_for_itself(tmp_path):
    path = str(tmp_path / "board.lock")
    first = BoardLock(RUNNER, "local", path)
    first.acquire(10, lambda m: None)
    try:
        with pytest.raises(TargetError, match="already held by this edgebench"):
            BoardLock(RUNNER, "ssh://me@127.0.0.1", path).acquire(10, lambda m: None)
    finally:
        first.release()


def test_an_open_local_target_holds_its_board_and_close_lets_it_go(tmp_path, monkeypatch):
    path = tmp_path / "board.lock"
    target = LocalTarget()
    monkeypatch.setattr(target, "lock_file", lambda: str(path))
    with target:
        assert target.board_lock["file"] == str(path)
        with pytest.raises(TargetError, match="still in use"):
            _other_waits(path)
    assert _other_waits(path, timeout=5) == 0


def _other_waits(path: Path, timeout: float = 0.3) -> int:
    """Another process's lock runner asking for the board (its stdin open, as a target keeps it): raises like
    a target when the board stays in use; its exit code once it had the board and let it go."""
    proc = subprocess.Popen(RUNNER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps({"mode": "lock", "path": str(path), "timeout_s": timeout}) + "\n")
    proc.stdin.flush()
    while (doc := json.loads(proc.stdout.readline()))["status"] == "waiting":
        pass
    proc.stdin.close()
    code = proc.wait(10)
    if doc["status"] == "lock_timeout":
        raise TargetError(f"still in use by {describe(doc['holder'])}")
    assert doc["status"] == "ok"
    return code


def test_the_lock_timeout_flag():
    assert lock_timeout("0") == 0 and lock_timeout("90") == 90 and lock_timeout("none") is None
    for bad in ("-1", "soon", "nan", "1e999"):
        with pytest.raises(argparse.ArgumentTypeError):
            lock_timeout(bad)


@pytest.mark.slow
def test_a_runner_left_behind_by_a_killed_edgebench_is_waited_for(tmp_path):
    """Killed mid-measurement, an edgebench's lock goes at once but its runner process measures on: the next
    edgebench waits for that runner too (its shared flock on the busy file), and says why."""
    from tests import onnx_models
    from tests.sshd import sshd_loopback

    model = onnx_models.mlp(tmp_path / "m.onnx", hidden=256)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}  # a board.lock of this test's own
    bench = [sys.executable, "-m", "harness", "bench", str(model), "--min-iterations", "5", "--max-iterations",
             "100000000", "-q"]  # a 5 us model: the time limits decide how long a process measures
    first = subprocess.Popen([*bench, "--processes", "3", "--min-time", "3", "--out", str(tmp_path / "a")],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "a" / "processes.jsonl"
    deadline = time.monotonic() + 120
    while (not journal.exists() or not journal.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # one runner process is journaled: the second one is measuring now
    left = sshd_loopback.children(first.pid)
    first.kill()
    first.wait()
    second = subprocess.Popen([*bench, "--processes", "1", "--min-time", "0.1", "--out", str(tmp_path / "b")],
                              env={**env, "PYTHONUNBUFFERED": "1"}, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in left):
        time.sleep(0.02)
    gone = time.time()
    assert second.wait(120) == 0
    (start, _), = [(d["time_start"], d["time_end"]) for d in
                   (json.loads(line)["result"] for line in (tmp_path / "b" / "processes.jsonl").read_text().splitlines()
                    if json.loads(line)["kind"] == "process")]
    assert start >= gone - 0.5, "the next measurement started while the killed one's runner still ran"
    lock = json.loads((tmp_path / "b" / "machine.json").read_text())["targets"]["local"]["board_lock"]
    assert lock["waited_s"] > 1 and lock["waited_for"][-1]["pid"] == first.pid
    assert lock["waited_for"][-1].get("still_running")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_wait_that_is_interrupted_leaves_no_lock_runner_behind(tmp_path, monkeypatch):
    path = tmp_path / "board.lock"
    first = other_edgebench(path)
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    class Stop(Exception):
        pass

    def interrupted(message: str) -> None:  # what `measure` does once the run is stopped: raise from the line
        raise Stop(message)

    monkeypatch.setattr(subprocess, "Popen", recording)
    try:
        with pytest.raises(Stop):
            BoardLock(RUNNER, "pi@board", str(path)).acquire(30, interrupted)
    finally:
        first.stdin.close()
        first.wait(10)
    (runner,) = started
    assert runner.wait(10) == 0  # its stdin closed: it stopped waiting and exited
