"""The contract every target keeps: run the standalone runner once, in a fresh process, and return its JSON.

A target only owns the *transport*: how the runner file and the files a spec names reach a Python
interpreter, and how the runner's one JSON document comes back. Everything else (how many processes,
statistics, result files) lives in `harness/` and is the same for every target, so a local and a
remote number mean the same thing.

Runner spec convention: every file the runner needs is named in ``spec["files"]`` (key -> local path);
the rest of the spec refers to files by key only. A remote target copies those files (cached by
sha256) and rewrites the paths before it starts the runner.
"""

from __future__ import annotations

import abc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.errors import TargetError
from targets.runner import CRASH_SIGNALS, IMPORT_MARK, RUNNER_VERSION, onnxruntime_crash

RUNNER_PATH = Path(__file__).with_name("runner.py")


def failure(status: str, error: str, **extra: Any) -> dict[str, Any]:
    """A runner-shaped result for a run that produced no JSON of its own (timeout, crash, lost link)."""
    return {"status": status, "error": error, **extra}


def parse_runner_output(stdout: str, stderr: str, returncode: int | None, command: str) -> dict[str, Any]:
    """Turn what a runner process printed into its result dict; a crash becomes a failure record."""
    text = stdout.strip()
    if text:
        try:
            doc = json.loads(text.splitlines()[-1])
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and "status" in doc:
            check_runner_version(doc, command)
            return doc
    if returncode is not None and returncode < 0:
        crash = import_crash(stderr, -returncode)
        if crash:
            return crash
    tail = " | ".join(line for line in stderr.strip().splitlines()[-5:] if line.strip())
    if returncode is not None and returncode < 0:
        what = f"the runner was killed by signal {-returncode}"
    else:
        what = f"the runner exited with code {returncode} without a result"
    return failure("crashed", f"{what} ({command}){': ' + tail if tail else ''}")


def check_runner_version(doc: dict[str, Any], command: str) -> None:
    """Refuse a document from a runner of another protocol version (a stale runner.py): misread, its numbers
    would be wrong without a word."""
    version = doc.get("runner_version")
    if version != RUNNER_VERSION:
        raise TargetError(f"{command} answered as runner version {version}, but this edgebench speaks version "
                          f"{RUNNER_VERSION}: a stale copy of runner.py; run the runner that comes with this "
                          "edgebench (reinstall it, or remove the old copy where --python or the board finds it)")


def import_crash(stderr: str, signum: int) -> dict[str, Any] | None:
    """The failure record for a runner killed by `signum` while importing onnxruntime (its last stderr mark
    says so), with what it means and what to install instead; None when it died elsewhere."""
    if signum not in CRASH_SIGNALS:
        return None
    marks = [line for line in stderr.splitlines() if line.startswith("edgebench-runner: ")]
    if not marks or not marks[-1].startswith(IMPORT_MARK + " "):
        return None
    fields = marks[-1][len(IMPORT_MARK) + 1:].split(" ", 3)
    if len(fields) < 4:
        return None
    package, version, host, python = (None if f == "-" else f for f in fields)
    what, fix = onnxruntime_crash(signum, python, host, package, version)
    return failure("no_onnxruntime", f"{what}; install instead: {fix}")


#: how long a target waits for a board another edgebench measures on (--lock-timeout; targets/boardlock.py)
DEFAULT_LOCK_TIMEOUT_S = 3600.0


def _to_stderr(message: str) -> None:
    print(f"edgebench: {message}", file=sys.stderr, flush=True)


class Target(abc.ABC):
    """Where a measurement runs. Subclasses override only the transport."""

    #: the name written in the `target` column of every result file
    name: str
    #: how long open() waits for a board another edgebench measures on (None: no limit)
    lock_timeout_s: float | None = DEFAULT_LOCK_TIMEOUT_S
    #: told who holds the board while open() waits for it
    on_lock_wait: Callable[[str], None] = staticmethod(_to_stderr)
    _board_lock: Any = None

    def open(self) -> None:
        """Connect, check the target is usable (TargetError with the fix if not) and take the board's lock."""
        self.take_board()

    def close(self) -> None:
        """Let the board go, release connections and remove any scratch space."""
        self.release_board()

    def lock_command(self) -> list[str] | None:
        """The command that starts a lock-mode runner on the board (None: nothing to lock)."""
        return None

    def lock_file(self) -> str | None:
        """The board's lock file (None: the runner's default, ~/.cache/edgebench/board.lock)."""
        return None

    def take_board(self) -> None:
        """Hold the board's lock until close(): one measurement per board at a time, whoever runs it."""
        from targets.boardlock import BoardLock

        if self._board_lock is not None and self._board_lock.held:
            return
        command = self.lock_command()
        if command is None:
            return
        lock = BoardLock(command, self.name, self.lock_file())
        lock.acquire(self.lock_timeout_s, self.on_lock_wait)
        self._board_lock = lock

    def release_board(self) -> None:
        if self._board_lock is not None:
            self._board_lock.release()

    def under_lock(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`spec` for a runner started while this target holds its board: the runner keeps a shared flock on
        the lock's busy file, so that a next holder waits for it even if we are killed meanwhile."""
        lock = self._board_lock
        if lock is None or not lock.held or not lock.busy:
            return spec
        return {**spec, "board_busy": lock.busy}

    def lost_board(self) -> bool:
        """True when this target is open but its lock is gone (the connection that held it dropped)."""
        return self._board_lock is not None and self._board_lock.wanted and not self._board_lock.held

    @property
    def board_lock(self) -> dict[str, Any] | None:
        """The lock this target holds or last held: file, holder (us), waited_s, waited_for; for machine.json."""
        return None if self._board_lock is None else self._board_lock.info

    @abc.abstractmethod
    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run the standalone runner once in a fresh process with `spec`; return its JSON document.

        Never raises for a failed *measurement* (bad model, timeout, crash): those come back as a
        dict with ``status`` != "ok" and an ``error`` message. Raises TargetError only when the
        target itself is unusable (so the caller can stop using it and keep other targets going).
        """

    @abc.abstractmethod
    def probe(self, timeout: float = 30.0) -> dict[str, Any]:
        """Machine facts and installed versions (runner spec ``{"mode": "probe"}``), for `doctor`."""

    def __enter__(self) -> Target:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
