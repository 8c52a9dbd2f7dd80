"""One measurement per board at a time, across people and machines.

A target holds its board's lock for as long as it is open: a runner process in lock mode (targets/runner.py
`hold_lock`) takes an exclusive flock on a file on the board and keeps it while its stdin stays open. Our end
of that stdin is a pipe in this process (through the SSH connection for a board), so the lock ends with us:
closed on `release`, and closed by the kernel when edgebench is killed or the connection drops. Nothing can
be left locked, and nothing needs cleaning up.
"""

from __future__ import annotations

import getpass
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from targets.base import DEFAULT_LOCK_TIMEOUT_S, parse_runner_output
from targets.errors import TargetError

__all__ = ["DEFAULT_LOCK_TIMEOUT_S", "BoardLock", "describe", "who_we_are"]
_SLACK_S = 30.0  # our own limit past the runner's, for a board or link that stops answering


def who_we_are() -> dict[str, Any]:
    """What a waiting edgebench is told about the holder: user, host, process and command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    words = [os.path.basename(a) if os.sep in a else a for a in sys.argv[1:4]]
    command = "edgebench " + " ".join(words) + (" ..." if len(sys.argv) > 4 else "")
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid(), "command": command}


def describe(holder: dict[str, Any] | None, age: bool = True) -> str:
    """`alice@laptop (pid 4242, edgebench bench m.onnx) since 2026-11-22T10:42:03Z, 35 s ago`."""
    if not holder:
        return "another edgebench (it has not written its name yet)"
    who = f"{holder.get('user', '?')}@{holder.get('host', '?')}"
    what = ", ".join(str(x) for x in (f"pid {holder['pid']}" if holder.get("pid") else None, holder.get("command"))
                     if x)
    since = f" since {holder['since_utc']}" if holder.get("since_utc") else ""
    if holder.get("still_running"):
        since += " (killed or cut off; its last runner still runs on the board)"
    ago = f", {holder['held_s']:.0f} s ago" if age and holder.get("held_s") is not None else ""
    return f"{who}{f' ({what})' if what else ''}{since}{ago}"


def _ours(holder: dict[str, Any] | None) -> bool:
    me = who_we_are()
    return bool(holder) and holder.get("host") == me["host"] and holder.get("pid") == me["pid"]


class BoardLock:
    """The lock on one board, held by a lock-mode runner started with `command` (a local python or ssh)."""

    def __init__(self, command: Sequence[str], board: str, path: str | None = None) -> None:
        self.command = list(command)
        self.board = board
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None
        #: between acquire() and release(): a lock lost meanwhile (a dropped connection) must be taken again
        self.wanted = False
        #: what went into machine.json: the file, who we are, since when, how long we waited and for whom
        self.info: dict[str, Any] | None = None
        #: the file every runner started under this lock keeps a shared flock on (the runner's board_busy)
        self.busy: str | None = None

    @property
    def held(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def acquire(self, timeout_s: float | None, on_wait: Callable[[str], None]) -> dict[str, Any]:
        """Wait for the board (saying for whom), then hold it; TargetError when `timeout_s` runs out."""
        spec = {"mode": "lock", "path": self.path, "timeout_s": timeout_s, "holder": who_we_are()}
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(spec).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except OSError:
            pass  # the process is gone already: its output says why
        try:
            return self._wait(proc, stderr, timeout_s, on_wait)
        except BaseException:
            self._stop(proc)  # interrupted while waiting (Ctrl-C, the run stopping): no runner left polling
            raise

    def _wait(self, proc: subprocess.Popen[bytes], stderr: Any, timeout_s: float | None,
              on_wait: Callable[[str], None]) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s + _SLACK_S
        buffered = b""
        while True:
            line, buffered = self._line(proc, buffered, deadline)
            doc = self._document(proc, line, stderr)
            status = doc.get("status")
            if status == "waiting":
                if _ours(doc.get("holder")):
                    self._stop(proc)
                    raise TargetError(f"{self.board} is already held by this edgebench under another target name: "
                                      "name each board once")
                limit = "no limit" if timeout_s is None else f"at most {timeout_s:g} s, --lock-timeout"
                on_wait(f"{self.board} is in use by {describe(doc.get('holder'))}: waiting for it ({limit})")
                continue
            if status == "ok":
                self._proc, self.wanted, self.busy = proc, True, doc.get("busy")
                waited = [describe(h, age=False) for h in doc.get("waited_for") or []]
                if waited:
                    on_wait(f"{self.board} is ours after waiting {doc.get('waited_s', 0):.1f} s for "
                            f"{'; '.join(waited)}")
                self.info = {"file": doc.get("path"), "holder": doc.get("holder"),
                             "waited_s": doc.get("waited_s"), "waited_for": doc.get("waited_for") or []}
                return self.info
            self._stop(proc)
            if status == "lock_timeout":
                raise TargetError(f"{self.board} is still in use by {describe(doc.get('holder'))}: gave up after "
                                  f"{doc.get('waited_s', timeout_s):.0f} s; try again later or raise --lock-timeout")
            raise TargetError(f"cannot lock {self.board} for this measurement: {doc.get('error')}")

    def _line(self, proc: subprocess.Popen[bytes], buffered: bytes, deadline: float | None) -> tuple[bytes, bytes]:
        """The runner's next line ('' at its end); TargetError when it says nothing past the deadline."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in buffered:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self._stop(proc)
                raise TargetError(f"no answer from {self.board} while waiting for its lock: the link or the board "
                                  "hangs")
            readable, _, _ = select.select([fd], [], [], wait)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return buffered, b""
                buffered += chunk
        line, _, rest = buffered.partition(b"\n")
        return line, rest

    def _document(self, proc: subprocess.Popen[bytes], line: bytes, stderr: Any) -> dict[str, Any]:
        if line.strip():
            return parse_runner_output(line.decode("utf-8", "replace"), "", 0, "the board lock")
        proc.wait()
        stderr.seek(0)
        return parse_runner_output("", stderr.read().decode("utf-8", "replace"), proc.returncode,
                                   f"the lock runner on {self.board}")

    def release(self) -> None:
        """Let the board go (the runner on it sees its stdin end and exits)."""
        proc, self._proc, self.wanted = self._proc, None, False
        if proc is not None:
            self._stop(proc)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
