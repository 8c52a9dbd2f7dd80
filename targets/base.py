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


class Target(abc.ABC):
    """Where a measurement runs. Subclasses override only the transport."""

    #: the name written in the `target` column of every result file
    name: str

    def open(self) -> None:
        """Connect and check the target is usable; raise TargetError with the fix if not."""

    def close(self) -> None:
        """Release connections and remove any scratch space."""

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
