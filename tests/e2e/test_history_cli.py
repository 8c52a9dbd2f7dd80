"""The history through the CLI: bench and compare append, `history` reads, `--baseline-from-history` compares."""

from __future__ import annotations

import pandas as pd
import pytest

from tests import onnx_models
from tests.e2e.test_bench_cli import edgebench

QUICK = ["--processes", "4", "--min-time", "0.1", "--min-iterations", "5", "--threads", "1", "-q"]


@pytest.mark.slow  # two benches and a compare: about 13 s
def test_bench_appends_history_reads_and_the_next_bench_compares_with_the_last_stored_run(tmp_path):
    db = tmp_path / "h.sqlite"
    model = onnx_models.mlp(tmp_path / "m.onnx")
    for i in range(2):
        proc = edgebench("bench", model, *QUICK, "--out", tmp_path / f"run{i}", "--db", db,
                         *(["--baseline-from-history"] if i else []), timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "baseline from history" in proc.stdout and "separate runs" in proc.stdout
    (row,) = pd.read_csv(tmp_path / "run1" / "comparison.csv").to_dict("records")
    assert row["candidate"] == "m" and row["baseline"].startswith("m@") and row["method"] == "independent-processes"
    assert "not interleaved" in row["warnings"]

    compare = edgebench("compare", model, model, "--max-time", "5", "--round-time", "0.05", "--out",
                        tmp_path / "cmp", "--db", db, "-q", timeout=300)
    assert compare.returncode == 0, compare.stderr
    plot = tmp_path / "history.png"
    shown = edgebench("history", "--db", db, "--model", "m", "--plot", plot)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("m / m on local") and "2 ok results" in lines[0]
    assert sum(" ms (" in ln for ln in lines) == 2 and plot.stat().st_size > 1000
    import sqlite3

    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM comparisons").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 8  # 4 processes x 2 runs


def test_a_database_that_cannot_be_written_costs_a_warning_not_the_results(tmp_path):
    db = tmp_path / "h.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    model = onnx_models.mlp(tmp_path / "m.onnx")
    proc = edgebench("bench", model, *QUICK, "--out", tmp_path / "out", "--db", db, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning: the results were not added to the history database" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["status"].tolist() == ["ok"]


def test_history_without_a_database_says_so_in_one_line(tmp_path):
    proc = edgebench("history", "--db", tmp_path / "none.sqlite")
    assert proc.returncode == 2 and proc.stderr.startswith("error: no results database at")
    assert len(proc.stderr.strip().splitlines()) == 1
