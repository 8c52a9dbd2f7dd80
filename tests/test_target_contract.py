"""One contract, two transports: the same assertions against LocalTarget and SshTarget (loopback sshd).

Like TVM's RPC tests: a remote session must behave exactly like a local one, so a local and a remote
number mean the same thing. The SSH case runs over a real OpenSSH server (marker `ssh`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.base import Target
from targets.local import LocalTarget

FAST = {"min_time_s": 0.05, "min_iterations": 5, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "local":
        t: Target = LocalTarget()
        t.open()
        yield t
        t.close()
    else:
        yield request.getfixturevalue("ssh_target")


def test_probe_describes_the_machine(target: Target) -> None:
    doc = target.probe()
    assert doc["status"] == "ok"
    m = doc["machine"]
    assert m["arch"] == platform.machine()  # loopback: the same machine
    assert m["onnxruntime"] and m["numpy"]
    assert tuple(int(p) for p in m["python"].split(".")[:2]) >= (3, 9)
    assert "temp_c" in doc["telemetry_start"]


def test_bench_returns_raw_latencies(target: Target, mlp_model: Path) -> None:
    doc = target.run({"files": {"model": str(mlp_model)}, **FAST}, timeout=60)
    assert doc["status"] == "ok", doc.get("error")
    assert len(doc["latencies_ns"]) >= 5 and all(isinstance(v, int) and v > 0 for v in doc["latencies_ns"])
    assert doc["batch_size"] == 1 and doc["init_ms"] > 0 and doc["peak_rss_mb"] > 0
    assert doc["telemetry_end"]["time_unix"] >= doc["telemetry_start"]["time_unix"]


def test_int8_model_runs(target: Target, int8_model: Path) -> None:
    doc = target.run({"files": {"model": str(int8_model)}, **FAST}, timeout=60)
    assert doc["status"] == "ok", doc.get("error")


def test_bad_model_is_data_not_an_exception(target: Target, tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf")
    doc = target.run({"files": {"model": str(bad)}, **FAST}, timeout=60)
    assert doc["status"] == "bad_model"
    assert "broken.onnx" in doc["error"]


def test_missing_local_file_is_data(target: Target, tmp_path: Path) -> None:
    doc = target.run({"files": {"model": str(tmp_path / "absent.onnx")}, **FAST}, timeout=60)
    assert doc["status"] == "missing_file"
    assert "absent.onnx" in doc["error"]


def test_spec_without_model_is_bad_spec(target: Target) -> None:
    doc = target.run({"files": {}, **FAST}, timeout=60)
    assert doc["status"] == "bad_spec"


def test_timeout_stops_the_runner(target: Target, mlp_model: Path) -> None:
    # no call cap either: the runner's default (10,000 calls) would end a fast model's loop in time
    spec = {"files": {"model": str(mlp_model)}, "min_time_s": 60, "max_time_s": 60, "max_iterations": 10**9}
    t0 = time.monotonic()
    doc = target.run(spec, timeout=3)
    assert doc["status"] == "timeout"
    assert "3 s" in doc["error"]
    assert time.monotonic() - t0 < 15


def test_streams_give_every_stream_its_calls(target: Target, mlp_model: Path) -> None:
    doc = target.run({"files": {"model": str(mlp_model)}, **FAST, "streams": 2}, timeout=60)
    assert doc["status"] == "ok", doc.get("error")
    assert doc["streams"] == 2 and doc["stream_sessions"] == "separate"
    assert doc["stream_threads"] == max(1, doc["machine"]["cores"] // 2)  # streams x threads <= cores
    assert len(doc["stream_latencies_ns"]) == 2 and all(len(s) >= 1 for s in doc["stream_latencies_ns"])
    assert sum(len(s) for s in doc["stream_latencies_ns"]) >= 5
    rates = [len(s) / (span / 1e9) for s, span in zip(doc["stream_latencies_ns"], doc["stream_span_ns"])]
    assert doc["throughput_ips_streams"] == pytest.approx(sum(rates))
    assert doc["latencies_ns"]  # the single-stream loop still ran: its latency stays the default figure
