"""The results database: every `run`, `bench` and `compare` appends what it measured, so last month's runs can
be read next to today's (`edgebench history`) and a bench can be compared with the last stored one.

One SQLite file (default `$EDGEBENCH_DB`, else `$XDG_DATA_HOME/edgebench/history.sqlite`, else
`~/.local/share/edgebench/history.sqlite`). Its schema version is SQLite's `user_version`; MIGRATIONS[i] takes
version i to i + 1, applied in order inside the transaction that opens the file, so an older file is brought
up to date and a newer one is refused. WAL mode, a busy timeout and one `BEGIN IMMEDIATE` transaction per
append: two processes writing at once both land (tests/test_history.py).

A result's identity is (model, variant, target, batch size, threads, settings hash); the file's sha256, the
tool version, the time, the command and the run folder are recorded with it, so a trend shows when the model
file itself changed. The run folder stays the record: a database that cannot be written costs a warning,
never a result.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from targets.errors import EdgebenchError
from targets.fileio import cell_number

# The identity of a result (what a trend follows), in summary.csv's column names.
IDENTITY = ("model", "variant", "target", "batch_size", "threads", "settings_hash")

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: results (one summary row each, whole row kept as JSON), their samples, comparisons
    """
    CREATE TABLE results (
        id INTEGER PRIMARY KEY,
        time_utc TEXT NOT NULL, command TEXT NOT NULL, tool_version TEXT NOT NULL,
        run_dir TEXT NOT NULL, run_id TEXT,
        model TEXT NOT NULL, variant TEXT NOT NULL, target TEXT NOT NULL, batch_size TEXT NOT NULL,
        threads TEXT NOT NULL, settings_hash TEXT NOT NULL, model_sha256 TEXT,
        status TEXT NOT NULL, latency_ms_median REAL, latency_ms_ci95_low REAL, latency_ms_ci95_high REAL,
        hostname TEXT, row_json TEXT NOT NULL,
        UNIQUE (run_dir, model, variant, target, batch_size, threads, settings_hash, model_sha256, time_utc)
    );
    CREATE INDEX results_identity ON results (model, variant, target, batch_size, threads, settings_hash, time_utc);
    CREATE TABLE samples (
        result_id INTEGER NOT NULL REFERENCES results (id) ON DELETE CASCADE,
        process_index INTEGER NOT NULL, latencies_ms BLOB NOT NULL,
        PRIMARY KEY (result_id, process_index)
    );
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        time_utc TEXT NOT NULL, tool_version TEXT NOT NULL, out_dir TEXT NOT NULL,
        baseline TEXT NOT NULL, candidate TEXT NOT NULL, target TEXT NOT NULL,
        ratio_median REAL, ratio_ci95_low REAL, ratio_ci95_high REAL, verdict TEXT NOT NULL, gate TEXT,
        row_json TEXT NOT NULL,
        UNIQUE (out_dir, baseline, candidate, target)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    if os.environ.get("EDGEBENCH_DB"):
        return Path(os.environ["EDGEBENCH_DB"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "edgebench" / "history.sqlite"


def db_path(args: Any) -> Path:
    """--db, else the default; what `--db` names is checked when it is opened."""
    return Path(args.db) if getattr(args, "db", None) else default_path()


def add_db_options(p: Any, writes: bool = True) -> None:
    p.add_argument("--db", type=Path, metavar="FILE",
                   help="the results database (default $EDGEBENCH_DB, else ~/.local/share/edgebench/history.sqlite)")
    if writes:
        p.add_argument("--no-history", action="store_true", help="do not add these results to the database")


@contextmanager
def connect(path: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    """An open database at the current schema version (migrated when older); EdgebenchError when it is not one
    of ours or is newer than this edgebench."""
    if not create and not path.is_file():
        raise EdgebenchError(f"no results database at {path}: run `edgebench bench` or `run` first, or give --db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise EdgebenchError(f"cannot open the results database {path}: {exc}; give another --db") from None
    try:
        con.execute("PRAGMA busy_timeout = 60000")
        _use_wal(con)
        con.execute("PRAGMA foreign_keys = ON")
        _migrate(con, path)
        yield con
    except sqlite3.DatabaseError as exc:
        raise EdgebenchError(f"the results database {path} cannot be used ({exc}): move it aside or give another "
                             "--db") from None
    finally:
        con.close()


def _retry_locked(step: Any) -> Any:
    """`step()`, tried again while SQLite answers "database is locked" without waiting (it does so for a
    journal-mode switch and for some WAL states, whatever the busy timeout), for at most a minute."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: the write lock taken first (BEGIN IMMEDIATE), so two writers queue instead
    of failing half-way; rolled back on any error."""
    _retry_locked(lambda: con.execute("BEGIN IMMEDIATE"))
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _use_wal(con: sqlite3.Connection) -> None:
    """WAL mode (readers never block the writer), set once in the file. The switch takes the file's
    exclusive lock, and SQLite refuses it at once when another process has the file open (seen in CI: two
    first writers of a new file, "database is locked" in 0.4 s)."""

    def switch() -> None:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")

    _retry_locked(switch)


def _migrate(con: sqlite3.Connection, path: Path) -> None:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise EdgebenchError(f"the results database {path} has schema version {version}, newer than this "
                             f"edgebench's {SCHEMA_VERSION}: upgrade edgebench, or give another --db")
    with _transaction(con):
        version = con.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated it
        for step in MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    con.execute(statement)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def identity(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k) or "") for k in IDENTITY)


def record_results(path: Path, command: str, run_dir: Path, rows: Sequence[dict[str, str]],
                   samples: dict[tuple[str, ...], list[list[float]]]) -> int:
    """Append summary rows (as read from summary.csv) with their samples (per process, by identity); rows
    already stored (same folder, identity, sha256 and time) are skipped. Returns how many were added."""
    added = 0
    with connect(path) as con, _transaction(con):
        for row in rows:
            key = identity(row)
            cur = con.execute(
                "INSERT OR IGNORE INTO results (time_utc, command, tool_version, run_dir, run_id, model, variant, "
                "target, batch_size, threads, settings_hash, model_sha256, status, latency_ms_median, "
                "latency_ms_ci95_low, latency_ms_ci95_high, hostname, row_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.get("timestamp_utc") or "", command, __version__, str(run_dir.resolve()), row.get("run_id"),
                 *key, row.get("artifact_sha256"), row.get("status") or "", cell_number(row.get("latency_ms_median")),
                 cell_number(row.get("latency_ms_ci95_low")), cell_number(row.get("latency_ms_ci95_high")),
                 row.get("hostname"), json.dumps(row)))
            if cur.rowcount != 1:
                continue
            added += 1
            for index, calls in enumerate(samples.get(key, [])):
                con.execute("INSERT INTO samples (result_id, process_index, latencies_ms) VALUES (?, ?, ?)",
                            (cur.lastrowid, index, np.asarray(calls, dtype="<f8").tobytes()))
    return added


def record_comparisons(args: Any, out_dir: Path, rows: Sequence[Any]) -> None:
    """After `compare`: add its rows (ComparisonRow objects) to the database; a failure is one warning line."""
    if getattr(args, "no_history", False):
        return
    path = db_path(args)
    try:
        _insert_comparisons(path, out_dir, rows)
    except (EdgebenchError, OSError, sqlite3.Error) as exc:
        _not_recorded(path, exc, out_dir)


def _not_recorded(path: Path, exc: Exception, folder: Path) -> None:
    print(f"warning: the results were not added to the history database {path}: {exc} (they are in {folder}; "
          "--no-history skips the database)", file=sys.stderr)


def _insert_comparisons(path: Path, out_dir: Path, rows: Sequence[Any]) -> int:
    from dataclasses import asdict

    added = 0
    with connect(path) as con, _transaction(con):
        for r in rows:
            cur = con.execute(
                "INSERT OR IGNORE INTO comparisons (time_utc, tool_version, out_dir, baseline, candidate, target, "
                "ratio_median, ratio_ci95_low, ratio_ci95_high, verdict, gate, row_json) "
                "VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (__version__, str(out_dir.resolve()), r.baseline, r.candidate, r.target, cell_number(r.ratio_median),
                 cell_number(r.ratio_ci95_low), cell_number(r.ratio_ci95_high), r.verdict, r.gate or None,
                 json.dumps(asdict(r), default=str)))
            added += cur.rowcount
    return added


def record_folder(args: Any, command: str, folder: Path) -> None:
    """After `run` or `bench`: add the folder's summary rows and samples to the database; a failure is one
    warning line (the folder is the record)."""
    if getattr(args, "no_history", False):
        return
    from harness.compare import load_groups
    from harness.results import read_csv_rows

    path = db_path(args)
    try:
        rows = read_csv_rows(folder / "summary.csv") if (folder / "summary.csv").is_file() else []
        measured = any(r.get("status") == "ok" for r in rows) and (folder / "samples.csv").is_file()
        groups = load_groups(folder) if measured else {}  # failed rows are stored too, without samples
        samples = {(g[4], g[1], g[0], g[2], g[3], g[5]): calls for g, calls in groups.items()}
        record_results(path, command, folder, rows, samples)
    except (EdgebenchError, OSError, sqlite3.Error) as exc:
        _not_recorded(path, exc, folder)


@dataclass(frozen=True)
class Point:
    """One stored result of an identity."""

    id: int
    time_utc: str
    tool_version: str
    model_sha256: str
    status: str
    median_ms: float | None
    ci_low: float | None
    ci_high: float | None
    run_dir: str
    hostname: str


def series(path: Path, model: str | None = None, variant: str | None = None,
           target: str | None = None) -> dict[tuple[str, ...], list[Point]]:
    """Every identity's results in time order, filtered by name (exact, or a substring with `%`)."""
    where, params = [], []
    for column, value in (("model", model), ("variant", variant), ("target", target)):
        if value:
            where.append(f"{column} LIKE ?")
            params.append(value)
    sql = ("SELECT id, time_utc, tool_version, coalesce(model_sha256, ''), status, latency_ms_median, "
           "latency_ms_ci95_low, latency_ms_ci95_high, run_dir, coalesce(hostname, ''), "
           + ", ".join(IDENTITY) + " FROM results" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY time_utc, id")
    out: dict[tuple[str, ...], list[Point]] = {}
    with connect(path, create=False) as con:
        for rec in con.execute(sql, params):
            out.setdefault(tuple(rec[10:]), []).append(Point(*rec[:10]))
    return out


def last_samples(path: Path, key: tuple[str, ...], before_run_dir: Path) -> tuple[Point, list[list[float]]] | None:
    """The most recent ok result of `key` stored by another run folder, with its samples (None if there is
    none)."""
    with connect(path) as con:
        rec = con.execute(
            "SELECT id, time_utc, tool_version, coalesce(model_sha256, ''), status, latency_ms_median, "
            "latency_ms_ci95_low, latency_ms_ci95_high, run_dir, coalesce(hostname, '') FROM results WHERE "
            + " AND ".join(f"{k} = ?" for k in IDENTITY)
            + " AND status = 'ok' AND run_dir != ? AND EXISTS (SELECT 1 FROM samples WHERE result_id = results.id) "
            "ORDER BY time_utc DESC, id DESC LIMIT 1", (*key, str(before_run_dir.resolve()))).fetchone()
        if rec is None:
            return None
        blobs = con.execute("SELECT latencies_ms FROM samples WHERE result_id = ? ORDER BY process_index",
                            (rec[0],)).fetchall()
    return Point(*rec), [np.frombuffer(b, dtype="<f8").tolist() for (b,) in blobs]


def compare_with_history(path: Path, folder: Path, threshold: float) -> list[Any]:
    """`bench --baseline-from-history`: each ok result of `folder` against the last stored result of the same
    identity from another run (independent processes, as `compare` does for two result folders, with its
    warning that separate runs cannot tell drift from change). ComparisonRow objects; none when nothing is
    stored yet."""
    from harness.compare import comparison_row, load_groups
    from harness.compare_stats import compare_samples
    from harness.results import read_csv_rows

    rows = [r for r in read_csv_rows(folder / "summary.csv") if r.get("status") == "ok"]
    if not rows:
        return []
    groups = {(g[4], g[1], g[0], g[2], g[3], g[5]): calls for g, calls in load_groups(folder).items()}
    out = []
    for row in rows:
        key = identity(row)
        stored = last_samples(path, key, folder)
        if stored is None or key not in groups:
            continue
        point, calls = stored
        name = f"{row['variant']}@{point.time_utc}"
        c = compare_samples(calls, groups[key], threshold, baseline=name, candidate=row["variant"], interleaved=False)
        if point.model_sha256 != row.get("artifact_sha256"):
            other = (f"the stored result measured another file (sha256 {point.model_sha256[:12]}, now "
                     f"{str(row.get('artifact_sha256'))[:12]})")
            c = replace(c, warnings=(*c.warnings, other))
        out.append(comparison_row(c, row["target"], calls, groups[key], None))
    return out
