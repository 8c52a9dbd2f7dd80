"""The results database (harness/history.py) and step detection (harness/stepdetect.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import history
from harness.stepdetect import find_steps
from targets.errors import EdgebenchError

ROOT = Path(__file__).resolve().parents[1]


def _row(i: int, median: float = 1.0, model: str = "m") -> dict[str, str]:
    return {"timestamp_utc": f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z", "model": model, "variant": "fp32",
            "target": "local", "batch_size": "1", "threads": "", "settings_hash": "abc", "artifact_sha256": "f" * 64,
            "status": "ok", "latency_ms_median": str(median), "latency_ms_ci95_low": str(median * 0.99),
            "latency_ms_ci95_high": str(median * 1.01), "run_id": f"r{i}", "hostname": "h"}


def test_a_new_database_is_at_the_current_schema_and_an_older_one_is_migrated(tmp_path):
    old = tmp_path / "old.sqlite"
    sqlite3.connect(old).close()  # version 0: an empty file from before the first migration
    with history.connect(old) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"results", "samples", "comparisons"} <= tables


def test_a_newer_database_is_refused_not_misread(tmp_path):
    newer = tmp_path / "newer.sqlite"
    con = sqlite3.connect(newer)
    con.execute(f"PRAGMA user_version = {history.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(EdgebenchError, match="newer than this edgebench"):
        with history.connect(newer):
            pass


def test_results_and_samples_round_trip_and_a_folder_is_stored_once(tmp_path):
    db = tmp_path / "h.sqlite"
    key = history.identity(_row(0))
    calls = [[1.0, 1.1, 0.9], [1.2, 1.0]]
    assert history.record_results(db, "bench", tmp_path / "run1", [_row(0)], {key: calls}) == 1
    assert history.record_results(db, "bench", tmp_path / "run1", [_row(0)], {key: calls}) == 0  # a rerun adds nothing
    point, stored = history.last_samples(db, key, tmp_path / "run2")
    assert stored == calls and point.median_ms == 1.0 and point.tool_version
    assert history.last_samples(db, key, tmp_path / "run1") is None  # never against the run itself


WRITER = """
import sys
from pathlib import Path
from harness import history
db, tag = Path(sys.argv[1]), sys.argv[2]
for i in range(60):
    row = {"timestamp_utc": f"t{i}", "model": tag, "variant": "v", "target": "local", "batch_size": "1",
           "threads": "", "settings_hash": "s", "status": "ok", "latency_ms_median": "1"}
    history.record_results(db, "bench", Path(f"/runs/{tag}/{i}"), [row], {history.identity(row): [[1.0] * 200]})
"""


def test_two_processes_writing_at_once_both_land(tmp_path):
    db = tmp_path / "h.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for tag in ("a", "b")]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    with history.connect(db) as con:
        counts = dict(con.execute("SELECT model, count(*) FROM results GROUP BY model").fetchall())
        n_samples = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert counts == {"a": 60, "b": 60} and n_samples == 120


def test_a_clear_step_is_found_where_it_is_and_a_flat_series_has_none():
    rng = np.random.default_rng(0)
    flat = np.exp(rng.normal(0, 0.02, 30))
    assert find_steps(flat) == []
    stepped = flat * np.where(np.arange(30) >= 17, 1.12, 1.0)
    (step,) = find_steps(stepped)
    assert abs(step.index - 17) <= 1 and 0.08 < step.change < 0.16
    assert find_steps([1.0, 2.0, 1.0]) == []  # too short to tell a level from an odd run


def test_the_stated_rates_hold_on_simulated_series():
    """The same simulation as scripts/history_steps.py (fewer series): a +10% step at 3% noise."""
    from tests.sshd import _load

    found, alarms = _load("history_steps", ROOT / "scripts" / "history_steps.py").rates(seed=7, n=200, runs=30, sigma=0.03, spoiled=0.05, step=0.10)
    assert found >= 0.9 * 200 and alarms <= 0.05 * 200
