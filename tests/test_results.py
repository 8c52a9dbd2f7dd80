"""Result files: columns from the dataclasses, spreadsheet rules, files derived from the journal, pyperf."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pandas as pd
import pyperf
import pytest

from targets.errors import EdgebenchError
from harness.measurement import Measurement, ProcessRun, RunSpec
from harness.results import SAMPLE_COLUMNS, SUMMARY_COLUMNS, read_csv_rows, summary_row
from harness.runfolder import RunFolder

SETTINGS = RunSpec().settings_key()

CONTRACT_SUMMARY = """schema_version, run_id, timestamp_utc, target, hostname, arch, cpu_model, onnxruntime_version, model,
variant, artifact_sha256, batch_size, threads, n_processes, n_samples, latency_ms_median, latency_ms_p90,
latency_ms_p95, latency_ms_p99, latency_ms_mean, latency_ms_std, latency_ms_min, latency_ms_ci95_low,
latency_ms_ci95_high, throughput_ips, init_ms, first_inference_ms, peak_rss_mb, session_rss_mb,
model_bytes, model_zip_bytes, params, nonzero_params, macs, accuracy, precision_macro, recall_macro,
f1_macro, gmean, temp_c_start, temp_c_end, throttled, load_avg_1m, status, error"""
CONTRACT_SAMPLES = "run_id, target, variant, batch_size, threads, process_index, iteration, latency_ms"


def names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", " ").split(",")]


def fake_doc(median_ms: float, n: int = 50, throttled_now: bool = False) -> dict:
    lat = [int((median_ms + 0.01 * ((i % 7) - 3)) * 1e6) for i in range(n)]
    throttle = {"raw": "0x4" if throttled_now else "0x0", "flags": ["throttled"] if throttled_now else [],
                "throttled_now": throttled_now}
    return {"status": "ok", "latencies_ns": lat, "warmup_ns": lat[:3], "init_ms": 5.0, "first_inference_ms": 2.0,
            "throughput_ips": 1000 / median_ms, "rss_before_session_mb": 50.0, "rss_after_session_mb": 60.0,
            "peak_rss_mb": 70.0, "machine": {"hostname": "h", "arch": "x86_64", "cpu_model": "cpu, \"quoted\"",
                                             "onnxruntime": "1.2", "cores": 2},
            "telemetry_start": {"temp_c": 40.0, "load_avg_1m": 0.5, "throttle": {"flags": []}},
            "telemetry_end": {"temp_c": 45.0, "load_avg_1m": 0.6, "throttle": throttle},
            "accuracy": {"n": 4, "confusion": [[2, 0], [1, 1]]}}


def measurement(variant="v", median_ms=1.0, processes=3, **kw) -> Measurement:
    runs = tuple(ProcessRun.from_runner(i, fake_doc(median_ms + 0.001 * i, **kw)) for i in range(processes))
    return Measurement("run1", "local", "m", variant, f"/x/{variant}.onnx", SETTINGS, runs, "abc",
                       {"model_bytes": 1234, "params": 10})


def write(folder, *measurements) -> None:
    with RunFolder(folder) as f:
        for m in measurements:
            f.add(m)


def test_columns_include_the_contract_in_order():
    contract = names(CONTRACT_SUMMARY)
    assert list(SUMMARY_COLUMNS[:len(contract)]) == contract
    assert list(SAMPLE_COLUMNS[:9]) == ["schema_version"] + names(CONTRACT_SAMPLES)


def test_summary_row_is_derived_from_raw_samples():
    row = summary_row(measurement(median_ms=2.0))
    assert row.latency_ms_median == pytest.approx(2.001, abs=0.002)
    assert row.n_processes == 3 and row.n_samples == 150
    assert row.accuracy == pytest.approx(0.75) and row.model_bytes == 1234
    assert row.temp_c_start == 40.0 and row.temp_c_end == 45.0 and row.throttled is False
    assert row.latency_ms_ci95_low <= row.latency_ms_median <= row.latency_ms_ci95_high


def test_throttling_during_a_measurement_is_flagged():
    assert summary_row(measurement(throttled_now=True)).throttled is True


def test_a_failed_process_marks_the_row_but_keeps_the_others():
    runs = (ProcessRun.from_runner(0, fake_doc(1.0)), ProcessRun.from_runner(1, {"status": "timeout",
                                                                               "error": "took too long"}))
    m = Measurement("r", "local", "m", "v", "p", SETTINGS, runs)
    row = summary_row(m)
    assert row.status == "timeout" and row.error == "took too long" and row.n_processes == 1
    assert row.latency_ms_median is not None


def test_csv_files_follow_the_spreadsheet_rules_and_round_trip(tmp_path):
    failed = Measurement("run1", "local", "m", "c", "p", SETTINGS, (), status="bad_model", error="not, ONNX")
    write(tmp_path, measurement("a", 1.0), measurement("b", 2.0), failed)
    raw = (tmp_path / "summary.csv").read_bytes()
    raw.decode("utf-8")
    assert b"\r\n" not in raw and b"%" not in raw
    df = pd.read_csv(tmp_path / "summary.csv")
    assert list(df.columns) == list(SUMMARY_COLUMNS) and len(df) == 3
    assert df.loc[0, "cpu_model"] == 'cpu, "quoted"'
    for col in ("latency_ms_median", "throughput_ips", "accuracy", "model_bytes"):
        assert pd.api.types.is_numeric_dtype(df[col]), col
    assert pd.isna(df.loc[2, "latency_ms_median"]) and df.loc[2, "error"] == "not, ONNX"
    assert pd.Timestamp(df.loc[0, "timestamp_utc"]).tz is not None
    samples = pd.read_csv(tmp_path / "samples.csv")
    assert len(samples) == 300 and set(samples["variant"]) == {"a", "b"} and set(samples["model"]) == {"m"}
    assert samples.groupby("variant")["latency_ms"].median()["b"] == pytest.approx(2.001, abs=0.002)
    machine = json.loads((tmp_path / "machine.json").read_text())
    assert machine["schema_version"] == 1 and machine["targets"]["local"]["arch"] == "x86_64"


def test_pyperf_reads_the_suite_and_compare_to_works(tmp_path):
    write(tmp_path / "a", measurement("v", 1.0))
    write(tmp_path / "b", measurement("v", 1.5))
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "a" / "pyperf.json"))
    bench = suite.get_benchmark("v")
    assert bench.get_nrun() == 3 and bench.median() == pytest.approx(1.001e-3, rel=0.01)
    stats = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(tmp_path / "a" / "pyperf.json")],
                           capture_output=True, text=True)
    assert stats.returncode == 0 and "Median" in stats.stdout
    cmp = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(tmp_path / "a" / "pyperf.json"),
                          str(tmp_path / "b" / "pyperf.json")], capture_output=True, text=True)
    assert cmp.returncode == 0 and "slower" in cmp.stdout


def test_a_resumed_folder_keeps_earlier_measurements_in_every_file(tmp_path):
    write(tmp_path, measurement("a", 1.0))
    write(tmp_path, measurement("b", 2.0))
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "pyperf.json"))
    assert sorted(suite.get_benchmark_names()) == ["a", "b"]
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 2 and len(pd.read_csv(tmp_path / "samples.csv")) == 300


def test_two_models_of_one_variant_name_stay_apart_in_pyperf(tmp_path):
    other = Measurement("run1", "local", "other", "v", "/y/v.onnx", SETTINGS, measurement("v", 2.0).processes, "abc")
    write(tmp_path, measurement("v", 1.0), other)
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "pyperf.json"))
    assert sorted(suite.get_benchmark_names()) == ["m v", "other v"]
    assert [b.get_nrun() for b in suite] == [3, 3]


def test_a_newer_schema_is_refused_when_read(tmp_path):
    path = tmp_path / "summary.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["schema_version", "x"], [99, 1]])
    with pytest.raises(EdgebenchError, match="upgrade"):
        read_csv_rows(path)


def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    from targets import fileio

    target = tmp_path / "machine.json"
    target.write_text("old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(EdgebenchError, match=f"cannot write {target}: No space left on device; free some space"):
        fileio.atomic_write_text(target, "new")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
