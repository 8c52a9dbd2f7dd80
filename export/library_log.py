"""While a build runs, what torch, onnxruntime, onnxsim and Torch-Pruning print goes to a log file.

One model from a package printed about 270 lines to the terminal during `compress`: deprecation banners,
the TorchScript graph of a failed legacy export, a quantizer warning per BatchNorm weight. Much of it
comes from C++ (onnxruntime, the TorchScript exporter), which Python's ``warnings`` and ``logging``
never see, so file descriptors 1 and 2 themselves point at the log while the build runs. Progress
lines go to the saved terminal descriptors (and into the log, so it reads in order).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

LOG_FILE = "compress.log"


class LibraryLog:
    """Context manager: fds 1 and 2 -> ``path`` (appended); ``progress(fn)`` wraps a progress callback."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._saved: dict[int, int] = {}
        self._file = None

    def __enter__(self) -> "LibraryLog":
        _flush()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)
        self._file.write(f"--- edgebench build {time.strftime('%Y-%m-%d %H:%M:%S')} (library output below)\n")
        try:
            self._saved = {fd: os.dup(fd) for fd in (1, 2)}
        except OSError:  # no real descriptors (an embedding host): leave output where it goes
            self._saved = {}
        self._point_at_log()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._point_at_terminal()
        for saved in self._saved.values():
            os.close(saved)
        self._saved = {}
        if self._file is not None:
            self._file.close()
            self._file = None

    def progress(self, show: Callable[[str], None]) -> Callable[[str], None]:
        """A progress callback that shows each line on the terminal and writes it into the log."""

        def say(line: str) -> None:
            self._point_at_terminal()
            try:
                show(line)
            finally:
                self._point_at_log()
            if self._file is not None:
                self._file.write(f"[edgebench] {line}\n")

        return say

    def _point_at_log(self) -> None:
        _flush()
        if self._file is not None:
            for fd in self._saved:
                os.dup2(self._file.fileno(), fd)

    def _point_at_terminal(self) -> None:
        _flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)


def _flush() -> None:
    # Python's own buffers must reach the descriptor they were written for before it is switched
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
