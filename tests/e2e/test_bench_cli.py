"""`edgebench bench` end to end: a real subprocess, real runner processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import onnx_models

FAST = ["--processes", "2", "--min-time", "0.1", "--min-iterations", "5", "-q"]


def edgebench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def interrupt_after(args: list[str], journal: Path, processes: int, timeout: float = 120) -> str:
    """Start `edgebench ARGS`, press Ctrl-C once `processes` runner processes are journaled; its stderr.

    The child gets SIGINT's default disposition back: a test run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt (the
    command ran to the end and exited 0 in such a CI run)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < processes):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 130, err
    return err


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_bench_a_model_with_accuracy(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    data = onnx_models.digits_npz(tmp_path / "digits.npz", n=100)
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--data", data, "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "median ms" in proc.stdout and "mlp" in proc.stdout
    summary = pd.read_csv(out / "summary.csv")
    row = summary.iloc[0]
    assert row["status"] == "ok" and row["n_processes"] == 2 and row["variant"] == "mlp"
    assert 0 < row["latency_ms_ci95_low"] <= row["latency_ms_median"] <= row["latency_ms_ci95_high"]
    assert 0 <= row["accuracy"] <= 1 and row["params"] == 64 * 256 + 256 * 10
    assert row["throughput_ips"] > 0 and pd.isna(row["streams"]) and pd.isna(row["throughput_ips_streams"])
    assert row["model_bytes"] == model.stat().st_size and row["throughput_ips"] > 0
    samples = pd.read_csv(out / "samples.csv")
    assert len(samples) == row["n_samples"] and set(samples["process_index"]) == {0, 1}
    assert json.loads((out / "machine.json").read_text())["targets"]["local"]["cores"] >= 1
    stats = subprocess.run([sys.executable, "-m", "pyperf", "stats", out / "pyperf.json"], capture_output=True)
    assert stats.returncode == 0


def test_the_console_script_is_the_same_command(tmp_path):
    exe = shutil.which("edgebench", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("the edgebench console script is not installed next to this Python")
    a = subprocess.run([exe, "--help"], capture_output=True, text=True)
    b = edgebench("--help")
    assert a.returncode == b.returncode == 0
    assert a.stdout.replace(Path(exe).name, "edgebench") == b.stdout.replace("__main__.py", "edgebench")


def test_a_failing_model_becomes_a_row_and_the_others_are_measured(tmp_path):
    good = onnx_models.identity(tmp_path / "good.onnx")
    (tmp_path / "junk.onnx").write_text("hello")
    out = tmp_path / "out"
    proc = edgebench("bench", good, tmp_path / "junk.onnx", "--out", out, *FAST)
    assert_one_line_error(proc, "junk", "not an ONNX file", "1 of 2")
    rows = pd.read_csv(out / "summary.csv").set_index("variant")
    assert rows.loc["good", "status"] == "ok" and rows.loc["junk", "status"] == "bad_model"
    assert "good" in proc.stdout  # the table still shows what was measured


@pytest.mark.parametrize("case, words", [
    ("missing", ["no such file"]),
    ("not_onnx", ["not an ONNX file"]),
    ("invalid_graph", ["not a valid ONNX graph"]),
    ("bad_shape", ["does not fit"]),
])
def test_bad_input_gives_one_line_and_no_traceback(tmp_path, case, words):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    args = [model]
    if case == "missing":
        args = [tmp_path / "nope.onnx"]
    elif case == "not_onnx":
        (tmp_path / "x.onnx").write_bytes(os.urandom(64))
        args = [tmp_path / "x.onnx"]
    elif case == "invalid_graph":
        import onnx

        proto = onnx.load(str(model))
        proto.graph.node[1].input[1] = "no_such_tensor"
        onnx.save(proto, str(tmp_path / "broken.onnx"))
        args = [tmp_path / "broken.onnx"]
    elif case == "bad_shape":
        args = [model, "--shape", "x=1,3,8,8"]
    proc = edgebench("bench", *args, "--out", tmp_path / "out", *FAST)
    assert_one_line_error(proc, *words)


def test_debug_shows_the_traceback(tmp_path):
    proc = edgebench("--debug", "bench", tmp_path / "m.onnx", "--data", tmp_path / "none.npz")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "error: --data" in proc.stderr


def test_bad_flags_are_refused_before_measuring(tmp_path):
    model = onnx_models.identity(tmp_path / "id.onnx")
    assert_one_line_error(edgebench("bench", model, "--processes", "0"), "--processes")
    proc = edgebench("bench", model, "--shape", "x=oops")
    assert proc.returncode == 2 and "NAME=D0,D1" in proc.stderr


def test_a_runner_that_times_out_is_reported(tmp_path):
    model = onnx_models.identity(tmp_path / "id.onnx")
    slow = tmp_path / "slowpython"
    slow.write_text(f"#!/bin/sh\nsleep 30\nexec {sys.executable} \"$@\"\n")
    slow.chmod(0o755)
    start = time.monotonic()
    proc = edgebench("bench", model, "--python", slow, "--timeout", "2", "--max-time", "1", "--out",
                     tmp_path / "out", *FAST)
    assert time.monotonic() - start < 20
    assert_one_line_error(proc, "longer than 2 s", "--timeout")
    assert pd.read_csv(tmp_path / "out" / "summary.csv").loc[0, "status"] == "timeout"


def test_an_interrupted_run_keeps_what_it_measured(tmp_path):
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(3)]
    out = tmp_path / "out"
    journal = out / "processes.jsonl"
    err = interrupt_after(["bench", *models, "--out", out, "--processes", "3", "--min-time", "0.3", "-q"], journal, 4)
    assert "resume" in err and "Traceback" not in err
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(lines) >= 4 and all(rec["result"]["status"] == "ok" for rec in lines)


def test_rerunning_into_the_same_folder_resumes_without_duplicates(tmp_path):
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    (tmp_path / "junk.onnx").write_text("junk")
    out = tmp_path / "out"
    first = edgebench("bench", *models, tmp_path / "junk.onnx", "--out", out, *FAST)
    assert first.returncode == 1
    # the junk file is fixed; the rerun measures only it and drops its failed row
    onnx_models.identity(tmp_path / "junk.onnx")
    second = edgebench("bench", *models, tmp_path / "junk.onnx", "--out", out, *FAST)
    assert second.returncode == 0, second.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["variant"]) == ["junk", "m0", "m1"] and set(summary["status"]) == {"ok"}
    assert summary["run_id"].nunique() == 2  # m0/m1 kept from the first run
    samples = pd.read_csv(out / "samples.csv")
    assert samples.groupby("variant").size().to_dict() == summary.set_index("variant")["n_samples"].to_dict()
    third = edgebench("bench", *models, tmp_path / "junk.onnx", "--out", out, *FAST)
    assert third.returncode == 0 and "already measured" in third.stdout
    assert len(pd.read_csv(out / "summary.csv")) == 3


def test_an_interrupted_bench_reuses_its_journaled_processes(tmp_path):
    model = onnx_models.mlp(tmp_path / "m.onnx")
    out = tmp_path / "out"
    args = ["bench", str(model), "--out", str(out), "--processes", "4", "--min-time", "0.5", "-q"]
    journal = out / "processes.jsonl"
    interrupt_after(args, journal, 2)
    kept = len(journal.read_text().splitlines())
    assert 2 <= kept < 4 and not (out / "summary.csv").exists()
    resumed = edgebench(*args)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["process"] * 4 + ["measurement"]  # only the missing processes ran
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["n_processes"] == 4


def test_a_streaming_model_runs_on_the_values_given_and_says_what_was_fed(tmp_path):
    import numpy as np

    model = onnx_models.streaming(tmp_path / "stream.onnx")
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--out", out, *FAST)
    assert_one_line_error(proc, "--shape input=1,D1 --shape state=2,D2,8", "--input sr=VALUE")
    np.save(tmp_path / "state.npy", np.zeros((2, 1, 8), np.float32))
    given = ["--shape", "input=1,576", "--input", f"state={tmp_path / 'state.npy'}"]
    proc = edgebench("bench", model, *given, "--input", "sr=16000", "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]  # the failed row was dropped and measured again
    assert row["status"] == "ok" and row["batch_size"] == 1
    assert row["inputs"] == ("input:float32[1x576]:random; state:float32[2x1x8]:constant=state.npy; "
                             "sr:int64[]:constant=16000")
    # another sample rate is another measurement, not "already measured"
    proc = edgebench("bench", model, *given, "--input", "sr=8000", "--out", out, *FAST)
    assert proc.returncode == 0 and "already measured" not in proc.stdout, proc.stderr
    fed = pd.read_csv(out / "summary.csv")["inputs"]
    assert sorted(v.split("sr:int64[]:")[1] for v in fed) == ["constant=16000", "constant=8000"]


def test_batch_size_is_the_batch_measured(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    for extra in (["--shape", "x=1,1,8,8"], []):
        proc = edgebench("bench", model, "--batch", "4", *extra, "--out", out, *FAST)
        assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    fixed, batched = summary.iloc[0], summary.iloc[1]
    assert fixed["batch_size"] == 1 and "--batch 4 did not apply" in fixed["warnings"]
    assert fixed["inputs"] == "x:float32[1x1x8x8]:random"
    assert batched["batch_size"] == 4 and batched["inputs"] == "x:float32[4x1x8x8]:random"
    samples = pd.read_csv(out / "samples.csv")
    assert sorted(samples["batch_size"].unique()) == [1, 4]


def test_data_arrays_named_after_the_inputs_feed_a_two_input_model(tmp_path):
    import numpy as np

    model = onnx_models.two_inputs(tmp_path / "add.onnx")
    a = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    np.savez(tmp_path / "d.npz", a=a, b=np.zeros_like(a), y=np.array([0, 1, 2, 2]))
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--data", tmp_path / "d.npz", "--batch", "2", "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["inputs"] == "a:float32[2x3]:data; b:float32[2x3]:data" and row["accuracy"] == 1.0


def test_a_bad_input_value_is_one_line(tmp_path):
    model = onnx_models.streaming(tmp_path / "stream.onnx")
    assert_one_line_error(edgebench("bench", model, "--input", "sr=sixteen"), "--input sr=sixteen", ".npy")
    proc = edgebench("bench", model, "--shape", "input=1,D1")
    assert proc.returncode == 2 and "in place of D1" in proc.stderr


def test_bench_streams_sweep_adds_capacity_columns_and_a_curve(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--streams", "1,2", "--threads", "1", "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "items/s N streams" in proc.stdout
    rows = pd.read_csv(out / "summary.csv").sort_values("streams")
    assert rows["streams"].tolist() == [1, 2] and rows["stream_threads"].tolist() == [1, 1]
    assert rows["settings_hash"].nunique() == 2 and (rows["stream_sessions"] == "separate").all()
    for _, r in rows.iterrows():
        assert r["status"] == "ok" and r["n_processes"] == 2
        assert r["throughput_ips"] > 0 and r["latency_ms_median"] > 0  # the single-stream figures stay
        assert r["throughput_ips_streams_ci95_low"] <= r["throughput_ips_streams"] <= r["throughput_ips_streams_ci95_high"]
        assert 0 < r["stream_latency_ms_median"] <= r["stream_latency_ms_p90"] <= r["stream_latency_ms_p99"]
    journal = [json.loads(line) for line in (out / "processes.jsonl").read_text().splitlines()]
    assert sorted(len(j["result"]["stream_latencies_ns"]) for j in journal if j["kind"] == "process") == [1, 1, 2, 2]
    proc = edgebench("report", out)
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    assert "Throughput with concurrent streams" in report and "(streams.png)" in report
    assert (out / "streams.png").stat().st_size > 10_000


@pytest.mark.parametrize("value, words", [("0", ["0", "auto"]), ("2,2", ["twice"]), ("x", ["'x'"])])
def test_a_bad_streams_value_is_refused_before_measuring(tmp_path, capsys, value, words):
    from harness.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(tmp_path / "m.onnx"), "--streams", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--streams" in err and "Traceback" not in err
    for word in words:
        assert word in err
