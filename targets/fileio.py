"""File writes every layer shares: whole-file atomic replacement, whole-line durable appends, CSV cells.

A reader (or a crash) sees a file's old version or its new one, never half of one: the new bytes go to a
temp file with a unique name beside the target (two writers never share one, as a fixed `x.tmp` made
two commands into one folder trip over each other), are fsynced, and renamed over the target; the folder
is fsynced so the rename itself survives a power cut. Lives in targets/ because it is the lowest layer
that writes files (export/ writes manifests and artifacts.csv, harness/ the result files).
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError


def write_error(path: Path, exc: OSError) -> EdgebenchError:
    """The one message for a failed write: the path, the reason, and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space there (or write to another folder) and run the command again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable or write to another one"
    else:
        fix = "check the folder and run the command again"
    return EdgebenchError(f"cannot write {path}: {reason}; {fix}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A unique temp path beside `path` for a library to save into; on success it replaces `path` durably.

    For writers that want a file name (onnx.save_model, np.savez, torch.save); the temp keeps `path`'s
    suffix so such libraries do not append their own.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace a whole file so a reader (or a crash) sees the old version or the new one, never half."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write_bytes of UTF-8 text (newlines written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def csv_cell(value: Any) -> Any:
    """The one cell convention of every CSV edgebench writes: empty for "not measured" (None, NaN),
    `true`/`false` for booleans, plain numbers and text otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def cell_number(value: Any) -> float | None:
    """A cell read back as a number: None for an empty cell, NaN (pandas' empty) or text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
