"""A run folder's results cannot be lost, duplicated or corrupted (issue 12, defects 1-4), end to end.

Each test drives the real `edgebench bench` in subprocesses with real runner processes, then reads the
files as a user would (pandas, json, pyperf).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests import onnx_models
from tests.e2e.test_bench_cli import FAST, assert_one_line_error, edgebench, interrupt_after

# 15-50 s each with real runner processes; tests/test_journal.py and test_scheduler.py cover the same paths fast
pytestmark = pytest.mark.slow


def assert_samples_agree(out) -> None:
    """Every ok summary row has exactly its n_samples rows in samples.csv, and no sample is duplicated."""
    summary = pd.read_csv(out / "summary.csv")
    samples = pd.read_csv(out / "samples.csv")
    ok = summary[summary["status"] == "ok"]
    assert ok["n_samples"].sum() == len(samples) > 0
    assert ok.groupby("variant")["n_samples"].sum().to_dict() == samples.groupby("variant").size().to_dict()


def test_redoing_a_failed_row_keeps_the_samples_of_other_settings(tmp_path):
    """Defect 1: resume dropped samples by (target, variant, batch, threads), so an ok measurement with other
    settings lost them while summary.csv still counted them."""
    model = onnx_models.mlp(tmp_path / "a.onnx")
    out = tmp_path / "R"
    assert edgebench("bench", model, "--out", out, *FAST).returncode == 0
    bad = edgebench("bench", model, "--shape", "x=1,3,8,8", "--out", out, *FAST)  # fails: another setting
    assert bad.returncode == 1
    again = edgebench("bench", model, "--out", out, *FAST)
    assert again.returncode == 0 and "already measured" in again.stdout, again.stderr
    assert_samples_agree(out)
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["status"]) == ["bad_shape", "ok"]  # one row per measurement, the failed one kept


def test_redoing_a_model_keeps_another_model_of_the_same_variant_name(tmp_path):
    """Defect 1: two models both called `x` (in different folders): redoing one deleted the other's samples."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = onnx_models.mlp(tmp_path / "one" / "x.onnx", seed=1)
    second = tmp_path / "two" / "x.onnx"
    second.write_text("not a model yet")
    out = tmp_path / "R"
    assert edgebench("bench", first, "--out", out, *FAST).returncode == 0
    assert edgebench("bench", second, "--out", out, *FAST).returncode == 1
    onnx_models.mlp(second, seed=2)
    redo = edgebench("bench", second, "--out", out, *FAST)
    assert redo.returncode == 0, redo.stderr
    assert list(pd.read_csv(out / "summary.csv")["status"]) == ["ok", "ok"]
    assert_samples_agree(out)


def test_a_run_after_a_crash_mid_write_leaves_files_that_parse(tmp_path):
    """Defect 2: the next run glued its first row onto the line a crash had cut."""
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    out = tmp_path / "R"
    assert edgebench("bench", models[0], "--out", out, *FAST).returncode == 0
    for name in ("samples.csv", "summary.csv", "processes.jsonl"):  # a crash in the middle of a line
        path = out / name
        data = path.read_bytes()
        path.write_bytes(data + data[data.rfind(b"\n", 0, len(data) - 1) + 1:][:25])
    proc = edgebench("bench", *models, "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    samples = pd.read_csv(out / "samples.csv")
    assert sorted(summary["variant"]) == ["m0", "m1"] and set(summary["status"]) == {"ok"}
    assert not samples.duplicated(["variant", "process_index", "iteration"]).any()
    assert samples.groupby("variant").size().to_dict() == summary.set_index("variant")["n_samples"].to_dict()
    lines = (out / "processes.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    subprocess.run([sys.executable, "-m", "pyperf", "stats", out / "pyperf.json"], check=True, capture_output=True)


def test_a_journal_cut_by_a_crash_does_not_swallow_the_next_record(tmp_path):
    """Defect 2: a half journal line swallowed the next record; the resumed process must be counted."""
    model = onnx_models.mlp(tmp_path / "m.onnx")
    out = tmp_path / "R"
    args = ["bench", model, "--out", out, "--processes", "3", "--min-time", "0.3", "-q"]
    interrupt_after(args, out / "processes.jsonl", 1)
    journal = out / "processes.jsonl"
    data = journal.read_bytes()
    journal.write_bytes(data[:-40])  # the last process's line, cut short
    proc = edgebench(*args)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in journal.read_text().splitlines()]  # every line is a record
    assert pd.read_csv(out / "summary.csv").loc[0, "n_processes"] == 3
    assert {r["process_index"] for r in records if "process_index" in r} == {0, 1, 2}


def test_byte_copies_are_separate_measurements(tmp_path):
    """Defect 3: resume identified a model by its sha256 alone, so an A/A check shared one latency array and a
    copy was skipped as "already measured"."""
    a = onnx_models.mlp(tmp_path / "a.onnx")
    acopy = tmp_path / "acopy.onnx"
    shutil.copy(a, acopy)
    out = tmp_path / "R"
    args = ["bench", a, acopy, "--out", out, "--processes", "3", "--min-time", "0.2", "-q"]
    interrupt_after(args, out / "processes.jsonl", 3)
    proc = edgebench(*args)
    assert proc.returncode == 0, proc.stderr
    samples = pd.read_csv(out / "samples.csv")
    for index, group in samples.groupby("process_index"):
        by_model = [g["latency_ms"].tolist() for _, g in group.groupby("variant")]
        assert len(by_model) == 2 and by_model[0] != by_model[1], f"process {index} has one array for both"
    out2 = tmp_path / "R2"
    assert edgebench("bench", a, "--out", out2, *FAST).returncode == 0
    both = edgebench("bench", a, acopy, "--out", out2, *FAST)
    assert both.returncode == 0, both.stderr
    assert sorted(pd.read_csv(out2 / "summary.csv")["variant"]) == ["a", "acopy"]


def test_a_second_command_into_a_folder_in_use_is_refused(tmp_path):
    """Defect 4: two commands into one --out interleaved silently."""
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    out = tmp_path / "R"
    first = subprocess.Popen([sys.executable, "-m", "harness", "bench", *map(str, models), "--out", str(out),
                              "--processes", "4", "--min-time", "1.5", "-q"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "processes.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = edgebench("bench", models[0], "--out", out, *FAST)
        report = edgebench("report", out)
        still_running = first.poll() is None
        assert_one_line_error(second, str(out), "in use by edgebench", f"pid {first.pid}", "another --out")
        assert_one_line_error(report, "in use by edgebench")
        assert still_running, "the first command ended before the second ones ran: the test proves nothing"
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["variant"]) == ["m0", "m1"] and summary["n_processes"].tolist() == [4, 4]
    again = edgebench("bench", models[0], "--out", out, *FAST)  # the lock went with its process
    assert again.returncode == 0 and "in use" not in again.stderr
