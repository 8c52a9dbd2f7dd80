"""LocalTarget: the standalone runner in a fresh subprocess on this machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from targets.base import RUNNER_PATH, Target, failure, parse_runner_output
from targets.errors import TargetError


class LocalTarget(Target):
    """Runs `python runner.py -` with the spec on stdin; one fresh process per call.

    A fresh process per measurement matters here: on this machine one process ran the same model
    1.6x slower than the next, so the harness repeats processes and treats each as one sample.
    """

    def __init__(self, python: str | None = None, name: str = "local") -> None:
        if python and shutil.which(python) is None:  # refused before any measurement is tried with it
            raise TargetError(f"--python {python}: no such executable on this machine; give the path of a "
                              "Python with numpy and onnxruntime (or leave --python out)")
        self.python = python or sys.executable
        self.name = name

    def _execute(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        command = [self.python, str(RUNNER_PATH), "-"]
        try:
            proc = subprocess.run(
                command, input=json.dumps(self.under_lock(spec)), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return failure(
                "timeout",
                f"the runner took longer than {timeout:.0f} s and was stopped; "
                "raise --timeout or lower --max-time",
            )
        except OSError as exc:
            return failure("crashed", f"cannot start {self.python}: {exc}")
        return parse_runner_output(proc.stdout, proc.stderr, proc.returncode, " ".join(command))

    def lock_command(self) -> list[str]:
        # this machine's own Python: --python may be a wrapper (an emulated CPU, a slow start) and the lock
        # needs only the standard library
        return [sys.executable, str(RUNNER_PATH), "-"]

    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self._execute(spec, timeout)

    def probe(self, timeout: float = 30.0) -> dict[str, Any]:
        return self._execute({"mode": "probe"}, timeout)
