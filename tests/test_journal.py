"""The journal (processes.jsonl) is the record: reading past a crash, appending safely, identity, the fold,
result files as pure functions of it, the folder lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from harness import journal as jr
from harness.journal import JOURNAL, Key, JournalWriter, read_journal
from harness.measurement import Measurement, ProcessRun, RunSpec
from harness.resume import RunState
from harness.runfolder import RunFolder, held_for_report
from targets.errors import EdgebenchError
from tests.fake_target import runner_doc

SETTINGS = RunSpec().settings_key()
HASH = RunSpec().settings_hash()


def key(tmp_path, name="a", sha="s1", settings_hash=HASH) -> Key:
    return Key.of(tmp_path, model=name, variant=name, path=tmp_path / f"{name}.onnx", sha256=sha, target="local",
                  settings_hash=settings_hash)


def process(k: Key, index: int, doc: dict) -> dict:
    return jr.process_record(k, SETTINGS, "run1", "2026-01-01T00:00:00Z", index, doc)


def close(k: Key, indices: list[int], status="ok", error=None) -> dict:
    return jr.close_record(k, SETTINGS, "run1", "2026-01-01T00:00:01Z", model_path=k.path, processes=indices,
                           facts={"model_bytes": 10}, status=status, error=error, warnings=[])


# ---------------------------------------------------------------- identity


def test_the_path_is_relative_inside_the_folder_and_absolute_outside(tmp_path):
    inside = Key.of(tmp_path, model="m", variant="v", path=tmp_path / "artifacts" / "model.onnx", sha256="x",
                    target="local", settings_hash="h")
    outside = Key.of(tmp_path / "out", model="m", variant="v", path=tmp_path / "m.onnx", sha256="x",
                     target="local", settings_hash="h")
    assert inside.path == "artifacts/model.onnx" and outside.path == (tmp_path / "m.onnx").as_posix()
    assert Key.from_record(jr.process_record(inside, {}, "r", "t", 0, {})) == inside


def test_byte_copies_and_other_settings_are_other_measurements(tmp_path):
    a, copy, other = key(tmp_path, "a"), key(tmp_path, "acopy"), key(tmp_path, "a", settings_hash="other")
    state = RunState([process(a, 0, runner_doc(1.0)), close(a, [0])])
    assert state.done(a) and not state.done(copy) and not state.done(other)
    assert state.finished_processes(copy, 5) == []


# ---------------------------------------------------------------- reading and appending


def test_a_cut_last_line_is_skipped_reported_and_truncated_before_the_next_append(tmp_path):
    k = key(tmp_path)
    writer = JournalWriter(tmp_path, 0)
    writer.append(process(k, 0, runner_doc(1.0)))
    writer.close()
    path = tmp_path / JOURNAL
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(whole[:40])  # a crash in the middle of the next line
    read = read_journal(tmp_path)
    assert len(read.records) == 1 and read.complete_bytes == len(whole)
    assert len(read.problems) == 1 and "cut short by a crash" in read.problems[0]
    writer = JournalWriter(tmp_path, read.complete_bytes)
    writer.append(process(k, 1, runner_doc(1.0)))
    writer.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(line)["process_index"] for line in lines[:-1]] == [0, 1]


def test_a_full_disk_takes_back_the_part_of_a_line_it_wrote(tmp_path, monkeypatch):
    k = key(tmp_path)
    writer = JournalWriter(tmp_path, 0)
    writer.append(process(k, 0, runner_doc(1.0)))
    size = (tmp_path / JOURNAL).stat().st_size
    real_write = os.write
    monkeypatch.setattr(jr.os, "write", lambda fd, data: real_write(fd, data[:100]))  # ENOSPC after 100 bytes
    with pytest.raises(EdgebenchError, match=f"cannot write {tmp_path / JOURNAL}: No space left on device"):
        writer.append(process(k, 1, runner_doc(1.0)))
    monkeypatch.undo()
    assert (tmp_path / JOURNAL).stat().st_size == size
    writer.append(process(k, 1, runner_doc(1.0)))  # space is back: the next line is whole
    assert [r["process_index"] for r in read_journal(tmp_path).records] == [0, 1]


def test_a_journal_of_a_newer_format_is_refused(tmp_path):
    (tmp_path / JOURNAL).write_text(json.dumps({"schema_version": 99, "kind": "process"}) + "\n")
    with pytest.raises(EdgebenchError, match="newer than this edgebench reads.*upgrade"):
        read_journal(tmp_path)


def test_a_process_record_keeps_the_runner_document_exactly():
    doc = runner_doc(1.234567, n=7, accuracy={"n": 4, "confusion": [[2, 0], [1, 1]]})
    run = ProcessRun.from_runner(3, doc)
    assert ProcessRun.from_runner(3, run.to_doc()) == run and run.to_doc()["latencies_ns"] == doc["latencies_ns"]


# ---------------------------------------------------------------- the fold


def test_an_ok_process_is_kept_and_a_failed_one_replaced_by_its_rerun(tmp_path):
    k = key(tmp_path)
    timeout = {"status": "timeout", "error": "slow"}
    state = RunState([process(k, 0, runner_doc(1.0)), process(k, 1, timeout), close(k, [0, 1], "ok")])
    (failed,) = state.closed()
    assert not failed.ok and failed.row.status == "timeout" and failed.row.n_processes == 1
    assert [p.index for p in state.finished_processes(k, 5)] == [0]
    state.apply(process(k, 1, runner_doc(2.0)))
    state.apply(close(k, [0, 1]))
    (redone,) = state.closed()
    assert redone.ok and redone.row.n_processes == 2 and state.done(k)


def test_a_failure_tried_again_under_other_settings_is_replaced_but_ok_rows_stay(tmp_path):
    ok_a = key(tmp_path, "a")
    bad_a = key(tmp_path, "a", settings_hash="bad")
    other_a = key(tmp_path, "a", settings_hash="third")
    state = RunState([process(ok_a, 0, runner_doc(1.0)), close(ok_a, [0]), close(bad_a, [], "bad_shape", "x")])
    assert [c.key for c in state.closed()] == [ok_a, bad_a]
    state.apply(process(other_a, 0, runner_doc(1.0)))
    state.apply(close(other_a, [0]))
    assert [c.key for c in state.closed()] == [ok_a, other_a]  # the journal still holds the failure


# ---------------------------------------------------------------- files derived from the journal


def test_every_file_is_rebuilt_byte_for_byte_from_the_journal(tmp_path):
    a, b = key(tmp_path, "a"), key(tmp_path, "b")
    with RunFolder(tmp_path) as folder:
        for i in range(3):
            folder.record_process(a, SETTINGS, "run1", i, runner_doc(1.0 + i / 100))
            folder.record_process(b, SETTINGS, "run1", i, runner_doc(2.0 + i / 100))
        assert not (tmp_path / "summary.csv").exists()  # nothing is closed yet
        for k in (a, b):
            m = Measurement("run1", "local", k.model, k.variant, k.path, SETTINGS,
                            tuple(folder.state.finished_processes(k, 3)), k.sha256, {}, timestamp_utc="2026-01-01T00:00:00Z")
            folder.close_measurement(k, m)
    files = ["summary.csv", "samples.csv", "pyperf.json", "machine.json"]
    written = {name: (tmp_path / name).read_bytes() for name in files}
    for name in files:
        (tmp_path / name).unlink()
    (tmp_path / "summary.csv").write_text("stale")
    with held_for_report(tmp_path):
        pass
    assert {name: (tmp_path / name).read_bytes() for name in files} == written
    assert len(pd.read_csv(tmp_path / "samples.csv")) == 120


def test_an_older_folder_is_read_but_never_written_into(tmp_path):
    (tmp_path / JOURNAL).write_text(json.dumps({"run_id": "r", "target": "local", "variant": "v", "sha256": "s",
                                                "settings": {}, "process_index": 0, "result": runner_doc(1.0)}) + "\n")
    (tmp_path / "summary.csv").write_text("schema_version,variant\n1,v\n")
    with pytest.raises(EdgebenchError, match="older edgebench .* another --out"):
        RunFolder(tmp_path).open()
    with held_for_report(tmp_path):  # report keeps its files as they are
        pass
    assert (tmp_path / "summary.csv").read_text() == "schema_version,variant\n1,v\n"


# ---------------------------------------------------------------- one writer per folder


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    with RunFolder(tmp_path):
        with pytest.raises(EdgebenchError, match=rf"{tmp_path} is in use by edgebench \(pid {os.getpid()}\); wait"):
            RunFolder(tmp_path).open()
    with RunFolder(tmp_path):  # released on close
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from harness.runfolder import RunFolder; "
        f"f = RunFolder({str(tmp_path)!r}).open(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(EdgebenchError, match=f"pid {holder.pid}"):
            RunFolder(tmp_path).open()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    with RunFolder(tmp_path):
        assert time.monotonic() < deadline


def test_sync_brings_files_that_lag_the_journal_up_to_date(tmp_path, monkeypatch):
    """Costly rewrites may lag the journal during a run; `run` syncs before its report reads summary.csv."""
    from harness import runfolder

    monkeypatch.setattr(runfolder, "REWRITE_PAUSE", 1e9)  # after its first rewrite, a file waits "forever"
    with RunFolder(tmp_path) as folder:
        for name in ("a", "b"):
            k = key(tmp_path, name)
            folder.record_process(k, SETTINGS, "run1", 0, runner_doc(1.0))
            folder.close_measurement(k, Measurement("run1", "local", name, name, k.path, SETTINGS,
                                                    tuple(folder.state.finished_processes(k, 1)), k.sha256))
        assert list(pd.read_csv(tmp_path / "summary.csv")["variant"]) == ["a"]  # lagging, by design
        folder.sync()
        assert list(pd.read_csv(tmp_path / "summary.csv")["variant"]) == ["a", "b"]
