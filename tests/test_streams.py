"""harness/streams.py: the --streams values, the summary columns and the report's curve data."""

from __future__ import annotations

import pytest

from harness.measurement import ProcessRun
from harness.results import SUMMARY_COLUMNS
from harness.streams import curves, parse_streams, streams_figures
from targets.errors import EdgebenchError


def test_values_from_a_flag_or_toml():
    assert parse_streams("1,2,auto") == (1, 2, "auto")
    assert parse_streams([1, "AUTO"]) == (1, "auto") and parse_streams(4) == (4,)
    with pytest.raises(EdgebenchError, match="True"):
        parse_streams([True])


def run(index: int, ips: float, calls: list[list[float]]) -> ProcessRun:
    return ProcessRun.from_runner(index, {"status": "ok", "latencies_ns": [1000], "streams": len(calls),
                                          "stream_threads": 1, "stream_sessions": "separate",
                                          "stream_latencies_ns": [[v * 1e6 for v in s] for s in calls],
                                          "throughput_ips_streams": ips})


def test_figures_are_summary_columns_with_a_ci_over_processes():
    runs = [run(i, ips, [[1.0, 2.0], [3.0, 4.0]]) for i, ips in enumerate([100.0, 110.0, 90.0, 105.0, 95.0])]
    figures = streams_figures(runs)
    assert set(figures) <= set(SUMMARY_COLUMNS)
    assert figures["streams"] == 2 and figures["throughput_ips_streams"] == 100.0
    assert 90.0 <= figures["throughput_ips_streams_ci95_low"] <= 100.0 <= figures["throughput_ips_streams_ci95_high"]
    assert figures["stream_latency_ms_median"] == pytest.approx(2.5)  # every stream's calls, pooled
    assert streams_figures([ProcessRun.from_runner(0, {"status": "ok", "latencies_ns": [1]})]) == {}


def test_curve_points_sorted_by_stream_count_and_a_repeat_keeps_the_later_row():
    rows = [{"variant": "a", "target": "local", "status": "ok", "streams": n, "throughput_ips_streams": ips,
             "stream_latency_ms_median": 1.0} for n, ips in ((2, 180.0), (1, 100.0), (2, 190.0))]
    rows.append({"variant": "a", "target": "local", "status": "ok", "streams": "", "throughput_ips_streams": ""})
    rows.append({"variant": "b", "target": "local", "status": "ok", "streams": float("nan"),  # pandas' empty cell
                 "throughput_ips_streams": float("nan")})
    assert [(p[0], p[1]) for p in curves(rows)[("a", "local")]] == [(1, 100.0), (2, 190.0)]


def test_a_streams_process_survives_the_journal_round_trip():
    """The journal keeps the runner document; a resumed run rebuilds the same streams figures from it."""
    p = run(0, 123.0, [[1.5, 2.5], [3.5]])
    again = ProcessRun.from_runner(0, p.to_doc())
    assert again == p and streams_figures([again]) == streams_figures([p])
