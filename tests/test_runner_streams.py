"""The runner's streams phase: N threads calling back to back, counted over one shared window."""

from __future__ import annotations

import os
import time

import pytest

from targets import runner
from targets.local import LocalTarget
from tests import onnx_models

FAST = {"min_iterations": 5, "min_time_s": 0.1, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}
NO_WARMUP = (0, 0.0, 1.0, 0)


@pytest.mark.parametrize("streams, cores, threads, expected", [
    (1, 4, None, (1, 4)), (2, 4, None, (2, 2)), (3, 4, None, (3, 1)), (4, 2, None, (4, 1)),
    ("auto", 6, None, (6, 1)), (2, 4, 3, (2, 3)),  # a user's thread count is kept, even oversubscribed
])
def test_threads_per_stream_fit_the_cores(streams, cores, threads, expected):
    assert runner.stream_plan(streams, cores, threads) == expected


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, None])
def test_a_bad_stream_count_is_a_bad_spec(bad):
    with pytest.raises(runner.RunnerError) as err:
        runner.stream_plan(bad, 2)
    assert err.value.status == "bad_spec" and "auto" in str(err.value)


def test_streams_overlap_and_only_calls_inside_the_window_count():
    """time.sleep releases the GIL like onnxruntime's run(): two 5 ms streams deliver twice one stream."""
    def call():
        time.sleep(0.005)

    one, one_spans = runner.concurrent_loops([call], NO_WARMUP, (10, 0.3, 5.0, 10**6))
    two, two_spans = runner.concurrent_loops([call, call], NO_WARMUP, (10, 0.3, 5.0, 10**6))
    rate = lambda lat, spans: sum(len(s) / (t / 1e9) for s, t in zip(lat, spans))  # noqa: E731
    assert len(two) == 2 and all(len(s) >= 20 for s in two)
    assert 1.6 < rate(two, two_spans) / rate(one, one_spans) < 2.4
    # every counted call ended inside the window: no stream's span outlasts the window by a call
    assert max(two_spans) - min(two_spans) < 2 * max(max(s) for s in two)
    assert all(v >= 5e6 for s in two for v in s)


def test_the_stopping_rule_counts_all_streams_calls():
    calls = [0]

    def call():
        calls[0] += 1

    lat, _ = runner.concurrent_loops([call, call, call], NO_WARMUP, (10**6, 0.0, 5.0, 300))
    assert 300 <= sum(len(s) for s in lat) <= 303  # the cap is on the total, not per stream


def test_a_failing_stream_is_reported_as_run_failed():
    def bad():
        raise ValueError("boom")

    with pytest.raises(runner.RunnerError) as err:
        runner.concurrent_loops([lambda: None, bad], NO_WARMUP, (5, 0.05, 1.0, 100))
    assert err.value.status == "run_failed" and "boom" in str(err.value)


@pytest.mark.parametrize("sessions", ["separate", "shared"])
def test_streams_on_a_real_model(tmp_path, sessions):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = LocalTarget().run({"files": {"model": str(model)}, **FAST, "streams": "auto", "stream_sessions": sessions,
                             "intra_op_threads": 1}, timeout=60)
    assert doc["status"] == "ok", doc["error"]
    cores = len(os.sched_getaffinity(0))
    assert doc["streams"] == cores and doc["stream_threads"] == 1 and doc["stream_sessions"] == sessions
    assert len(doc["stream_latencies_ns"]) == cores and all(doc["stream_latencies_ns"])
    assert doc["throughput_ips_streams"] > 0 and doc["stream_peak_rss_mb"] > 0


def test_bad_stream_sessions_is_a_bad_spec(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = LocalTarget().run({"files": {"model": str(model)}, **FAST, "streams": 2, "stream_sessions": "pooled"},
                            timeout=60)
    assert doc["status"] == "bad_spec" and "separate, shared" in doc["error"]
