"""A run folder opened for writing: one writer at a time, the journal first, every other file derived.

`RunFolder` takes the folder's lock (a second command gets a clear error naming the holder's pid),
reads the journal, truncates a line a crash cut, rebuilds every result file from the journal (so a
file a crash left stale is current again), then records processes and closes measurements, each as
one journal line followed by the files that changed. Resume reads only the journal.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from targets.fileio import atomic_write_bytes, write_error
from harness.exporters import exporters
from harness.journal import JOURNAL, Key, JournalWriter, close_record, is_legacy, process_record, read_journal
from harness.measurement import Measurement, ProcessRun
from harness.results import SAMPLES_CSV, SUMMARY_CSV, SummaryRow, utc_now
from harness.resume import Closed, RunState

LOCK_FILE = ".edgebench.lock"
# After a file's rewrite took d seconds it waits REWRITE_PAUSE * d before the next one, so rewriting stays
# under ~10% of a run however large samples.csv grows (small files are rewritten at every close).
REWRITE_PAUSE = 9.0


class FolderLock:
    """An exclusive lock on a run folder, held while a command writes it; released when its process ends,
    however it ends (flock), so a killed command never leaves a stale lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> None:
        path = self.folder / LOCK_FILE
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise EdgebenchError(f"{self.folder} is in use by edgebench (pid {holder}); wait or use another --out") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class RunFolder:
    """The writer of one run folder. Thread-safe: several targets report at once."""

    def __init__(self, out_dir: Path, progress: Callable[[str], None] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.progress = progress or (lambda message: None)
        self._lock = threading.Lock()
        self._folder_lock = FolderLock(self.out_dir)
        self._files = exporters()
        self._written: dict[str, bytes] = {}  # a digest of each file as last written
        self._not_before: dict[str, float] = {}  # monotonic time before which a file is not rewritten
        self.state = RunState()
        self._journal: JournalWriter | None = None

    # -------------------------------------------------------------- opening and closing

    def open(self) -> RunFolder:
        """Lock the folder, read its journal, and bring every result file in line with it."""
        self._folder_lock.acquire()
        try:
            read = read_journal(self.out_dir)
            _refuse_legacy(self.out_dir, read.records)
            for problem in read.problems:
                self.progress(f"warning: {problem}")
            self.state = RunState(read.records)
            self._journal = JournalWriter(self.out_dir, read.complete_bytes)
            self._export(force=True)
        except BaseException:
            self._release()
            raise
        return self

    def sync(self) -> None:
        """Bring every result file in line with the journal now (rewrites may lag it: see REWRITE_PAUSE);
        before anything reads them, such as the report."""
        if self._journal is not None:
            with self._lock:
                self._export(force=True)

    def close(self) -> None:
        """Bring every file in line with the journal and release the folder."""
        try:
            self.sync()
        finally:
            self._release()

    def _release(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._folder_lock.release()

    def __enter__(self) -> RunFolder:
        return self.open()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except EdgebenchError:
            if exc_type is None:
                raise  # else the first error is the one to report; the journal has everything

    # -------------------------------------------------------------- what is there

    def key(self, *, model: str, variant: str, path: Path, sha256: str, target: str, settings_hash: str) -> Key:
        return Key.of(self.out_dir, model=model, variant=variant, path=path, sha256=sha256, target=target,
                      settings_hash=settings_hash)

    def closed(self) -> list[Closed]:
        return self.state.closed()

    # -------------------------------------------------------------- recording

    def record_process(self, key: Key, settings: dict[str, Any], run_id: str, index: int,
                       doc: dict[str, Any]) -> ProcessRun:
        """Journal one finished runner process (durable when this returns); the result files do not change."""
        record = process_record(key, settings, run_id, utc_now(), index, doc)
        with self._lock:
            self._append(record)
        return ProcessRun.from_runner(index, doc)

    def close_measurement(self, key: Key, m: Measurement, warnings: Iterable[str] = ()) -> SummaryRow:
        """Journal that a measurement is complete (its processes are journaled), then rewrite the files."""
        record = close_record(key, m.settings, m.run_id, m.timestamp_utc or utc_now(), model_path=m.model_path,
                              processes=[p.index for p in m.processes], facts=_jsonable(m.model_facts),
                              status=m.status, error=m.error, warnings=list(warnings))
        with self._lock:
            closed = self._append(record)
            self._export()
        assert closed is not None
        return closed.row

    def add(self, m: Measurement, warnings: Iterable[str] = ()) -> SummaryRow:
        """Journal a whole measurement at once (its processes, then its close): for tools and tests."""
        key = self.key(model=m.model, variant=m.variant, path=Path(m.model_path), sha256=m.artifact_sha256,
                       target=m.target, settings_hash=m.settings_hash)
        for p in m.processes:
            self.record_process(key, m.settings, m.run_id, p.index, p.to_doc())
        return self.close_measurement(key, m, warnings)

    def _append(self, record: dict[str, Any]) -> Closed | None:
        if self._journal is None:
            raise RuntimeError("RunFolder used before open()")
        self._journal.append(record)
        return self.state.apply(record)

    def _export(self, force: bool = False) -> None:
        """Rewrite each result file whose bytes changed (a pure function of the closed measurements); one
        whose last rewrite was costly waits its turn (see REWRITE_PAUSE) unless `force`."""
        closed = self.state.closed()
        for exporter in self._files:
            name = exporter.filename
            start = time.monotonic()
            if not force and start < self._not_before.get(name, 0.0):
                continue
            data = exporter.render(closed)
            digest = hashlib.blake2b(data or b"", digest_size=16).digest()
            if data is None or self._written.get(name) == digest:
                continue
            atomic_write_bytes(self.out_dir / name, data)
            self._written[name] = digest
            end = time.monotonic()
            self._not_before[name] = end + REWRITE_PAUSE * (end - start)


def _jsonable(facts: dict[str, Any]) -> dict[str, Any]:
    """Model facts as plain JSON values (a manifest may hold numpy scalars)."""
    out = {}
    for k, v in facts.items():
        if hasattr(v, "item") and callable(v.item):
            v = v.item()
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
    return out


def _refuse_legacy(folder: Path, records: list[dict[str, Any]]) -> None:
    """A folder written before the journal was the record cannot be rebuilt from it: never write into one."""
    old = any(is_legacy(r) for r in records) or (
        not records and any((folder / name).exists() for name in (SUMMARY_CSV, SAMPLES_CSV)))
    if old:
        raise EdgebenchError(f"{folder} holds results of an older edgebench ({JOURNAL} format 1) that cannot be "
                             "resumed; `edgebench report` and `compare` still read it: measure into another --out")


@contextmanager
def held_for_report(folder: Path, progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold a run folder while its report is written, its result files first rewritten from the journal.
    An older folder (written before the journal was the record) keeps the files it has."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgebenchError(f"{folder}: no such folder; give a folder written by edgebench run or bench")
    records = read_journal(folder).records
    if records and not any(is_legacy(r) for r in records):
        with RunFolder(folder, progress):
            yield
        return
    lock = FolderLock(folder)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
