"""report.md and its plots, written from a run folder's files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from targets.errors import EdgebenchError
from harness.measurement import Measurement, ProcessRun, RunSpec
from harness.report import describe_variant, pareto_front, write_report
from harness.runfolder import RunFolder

SETTINGS = RunSpec().settings_key()


@dataclass
class Verdict:
    ratio: float
    ci_low: float
    ci_high: float
    verdict: str


def median_ratio(base, cand):
    r = float(np.median(np.concatenate(cand)) / np.median(np.concatenate(base)))
    return Verdict(r, r * 0.97, r * 1.03, "faster" if r < 0.97 else "slower" if r > 1.03 else "same")


def fill(out, variants):
    with RunFolder(out) as folder:
        _fill(folder, variants)


def _fill(writer, variants):
    rng = np.random.default_rng(0)
    for name, (median, size, acc) in variants.items():
        runs = tuple(ProcessRun.from_runner(i, {
            "status": "ok", "latencies_ns": list((rng.normal(median, 0.02 * median, 200) * 1e6).astype(int)),
            "machine": {"arch": "x86_64", "cpu_model": "cpu", "onnxruntime": "1.0"},
            "telemetry_start": {"load_avg_1m": 0.2}, "accuracy": {"n": 100, "confusion": [[acc, 50 - acc],
                                                                                       [0, 50]]}})
                     for i in range(3))
        writer.add(Measurement("r1", "local", "net", name, f"{name}.onnx", SETTINGS, runs, "sha",
                               {"model_bytes": size, "model_zip_bytes": size // 2}))


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 90, "a"), (2.0, 95, "b"), (1.5, 89, "c"), (3.0, 94, "d"), (0.5, 80, "e")]
    assert pareto_front(pts) == ["e", "a", "b"]


def test_describe_variant_in_plain_words():
    assert "50% of channels physically removed" in describe_variant("prune-ch:0.5+int8")
    assert "INT8 static" in describe_variant("prune-ch:0.5+int8")
    assert "3 prune/fine-tune steps" in describe_variant("prune-ch:0.5@iter=3")
    assert describe_variant("my_model") == "as given"


def test_report_says_what_is_faster_and_what_is_not(tmp_path):
    fill(tmp_path, {"fp32": (2.0, 4000, 50), "prune-ch:0.5": (1.2, 1900, 49), "prune-l1:0.9": (2.0, 4000, 48)})
    path = write_report(tmp_path, median_ratio)
    text = path.read_text()
    assert "1.6" in text and "faster** than fp32" in text
    line = next(line for line in text.splitlines() if line.startswith("- **prune-l1:0.9**"))
    assert "not faster" in line and "dense runtime" in line
    assert "file 48% of fp32's" in text
    for png in ("accuracy_vs_latency.png", "size_vs_accuracy.png", "latency_distribution.png",
                "speedup_compression.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text


def test_failed_rows_are_reported_not_hidden(tmp_path):
    fill(tmp_path, {"fp32": (2.0, 4000, 50)})
    with RunFolder(tmp_path) as folder:
        folder.add(Measurement("r1", "local", "net", "cluster:4", "p", SETTINGS, (), status="export_failed",
                               error="parity 0.3 > 1e-3"))
    text = write_report(tmp_path, median_ratio).read_text()
    assert "not measured — export_failed: parity 0.3 > 1e-3" in text


def test_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(EdgebenchError, match="no summary.csv"):
        write_report(tmp_path)
