"""The journal of a run folder, `processes.jsonl`: the one record every result file is derived from.

One JSON object per line, appended with a single write() and fsynced before anything else is written:

- kind "process": one finished runner process: the measurement's identity, its settings, the process
  index and the runner's document verbatim (raw samples in ns, machine, telemetry, accuracy, status, error);
- kind "measurement": a measurement closed: identity, which process indices it is made of, the model's
  facts (sizes, params, manifest fields), status, error, warnings and the time. summary.csv holds one row
  per identity, from its last close; a failed measurement that is redone is closed again, never edited.

A measurement's identity (`Key`) is the model's name and variant, its file (relative to the run folder
when inside it, so a moved folder still resumes), the file's sha256, the target and the settings hash:
two byte-identical files are two measurements, and one file under two settings is two measurements.

A crash can cut the last line only (one write per line, appends in order). A reader skips a cut last line
and says so; the writer truncates it before its first append, so nothing is ever glued onto it.

Format history (`schema_version` on every line):
  1 - edgebench 0.1: process lines only (run_id, target, variant, sha256, settings, process_index, result),
      no schema_version. Still read for compare's stored facts; never resumed into.
  2 - identity on every line (model, variant, path, sha256, target, settings_hash), kind "process" or
      "measurement", time_utc; "measurement" lines close a measurement.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from targets.fileio import fsync_dir, write_error

JOURNAL = "processes.jsonl"
JOURNAL_VERSION = 2
PROCESS = "process"
MEASUREMENT = "measurement"


@dataclass(frozen=True)
class Key:
    """What makes two results the same measurement (resume reuses one only under the same key)."""

    model: str
    variant: str
    path: str
    sha256: str
    target: str
    settings_hash: str

    @classmethod
    def of(cls, folder: Path, *, model: str, variant: str, path: Path, sha256: str, target: str,
           settings_hash: str) -> Key:
        """The key of a model file measured into `folder` (its path relative to the folder when inside it)."""
        resolved = Path(os.path.abspath(path))
        try:
            where = resolved.relative_to(os.path.abspath(folder)).as_posix()
        except ValueError:
            where = resolved.as_posix()
        return cls(model, variant, where, sha256, target, settings_hash)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Key:
        return cls(*(str(record.get(name) or "") for name in cls.__dataclass_fields__))

    def fields(self) -> dict[str, str]:
        return asdict(self)

    @property
    def slot(self) -> tuple[str, str, str, str]:
        """The model file on a target, whatever its content and settings: a failure here is tried again."""
        return self.model, self.variant, self.path, self.target


def process_record(key: Key, settings: dict[str, Any], run_id: str, time_utc: str, index: int,
                   doc: dict[str, Any]) -> dict[str, Any]:
    """The journal line of one finished runner process (`doc` is the runner's document, verbatim)."""
    return {"schema_version": JOURNAL_VERSION, "kind": PROCESS, "run_id": run_id, "time_utc": time_utc,
            **key.fields(), "settings": settings, "process_index": index, "result": doc}


def close_record(key: Key, settings: dict[str, Any], run_id: str, time_utc: str, *, model_path: str,
                 processes: list[int], facts: dict[str, Any], status: str, error: str | None,
                 warnings: list[str]) -> dict[str, Any]:
    """The journal line that closes a measurement: the processes it is made of and what is known beside them."""
    return {"schema_version": JOURNAL_VERSION, "kind": MEASUREMENT, "run_id": run_id, "time_utc": time_utc,
            **key.fields(), "settings": settings, "model_path": model_path, "processes": processes,
            "facts": facts, "status": status, "error": error, "warnings": warnings}


def is_legacy(record: dict[str, Any]) -> bool:
    """A line of format 1 (no identity beyond the sha256: cannot be resumed into)."""
    return "schema_version" not in record


# ---------------------------------------------------------------- reading


@dataclass
class JournalRead:
    """The records of a journal, and what had to be skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete_bytes: int = 0  # length up to the end of the last whole line: where the writer appends


def read_journal(folder: Path) -> JournalRead:
    """The records of a run folder's processes.jsonl in the order written (none when it has none).

    A last line without its newline was cut by a crash: skipped and reported, like any line that is not
    a record. A line of a newer format is refused rather than misread.
    """
    path = Path(folder) / JOURNAL
    out = JournalRead()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise EdgebenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    out.complete_bytes = data.rfind(b"\n") + 1
    if out.complete_bytes < len(data):
        out.problems.append(f"{path}: the last line was cut short by a crash ({len(data) - out.complete_bytes} "
                            "bytes); that process counts as not measured")
    for number, line in enumerate(data[:out.complete_bytes].split(b"\n")[:-1], start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            out.problems.append(f"{path}: line {number} is not a journal record; skipped")
            continue
        version = record.get("schema_version", 1)
        if not isinstance(version, int) or version > JOURNAL_VERSION:
            raise EdgebenchError(f"{path} line {number} has schema_version {version}, newer than this edgebench "
                                 f"reads ({JOURNAL_VERSION}); upgrade edgebench")
        out.records.append(record)
    return out


# ---------------------------------------------------------------- appending


class JournalWriter:
    """Appends whole lines to processes.jsonl; the caller holds the run folder's lock (one writer)."""

    def __init__(self, folder: Path, complete_bytes: int) -> None:
        self.path = Path(folder) / JOURNAL
        self._fd: int | None = None
        self._size = complete_bytes

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                if os.fstat(self._fd).st_size > self._size:  # a line cut by a crash: never append after it
                    os.ftruncate(self._fd, self._size)
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            fsync_dir(self.path.parent)
        return self._fd

    def append(self, record: dict[str, Any]) -> None:
        """One write() of one whole line, then fsync: durable when this returns, or not there at all."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._open()
        try:
            written = os.write(fd, line)
            if written != len(line):  # a full disk takes part of a line: take it back
                raise OSError(28, os.strerror(28))
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                pass  # the reader skips a cut last line, and the next writer truncates it
            raise write_error(self.path, exc) from exc
        self._size += len(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
