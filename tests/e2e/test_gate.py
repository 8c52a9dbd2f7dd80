"""`compare` as a CI gate, through the CLI and its exit codes, on real measurements."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from harness.gate import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE
from tests import onnx_models
from tests.e2e.test_bench_cli import edgebench

GATE = ["--fail-if", "slower", "--max-slowdown", "5%", "--max-time", "60", "--round-time", "0.05",
        "--block-size", "10", "--drop", "2", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate")
    base = onnx_models.matmul_chain(folder / "model.onnx", depth=2, size=128)
    # the same graph with a larger input: what a change that slows the model looks like to the gate
    slowed = onnx_models.matmul_chain(folder / "slowed.onnx", depth=2, size=256)
    copy = folder / "copy.onnx"
    shutil.copyfile(base, copy)  # byte-identical
    return base, slowed, copy


def test_a_slowed_candidate_fails_the_gate_with_one_line_saying_which_by_how_much_how_sure(models, tmp_path):
    base, slowed, _ = models
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    proc = edgebench("compare", base, slowed, *GATE, "--out", tmp_path / "out", "--junit", junit,
                     "--summary-md", summary, timeout=300)
    assert proc.returncode == EXIT_GATE_FAILED, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("gate")]
    assert "FAILED" in line and "slowed vs model" in line and "ratio" in line and "95% CI" in line and "rounds" in line
    (row,) = pd.read_csv(tmp_path / "out" / "comparison.csv").to_dict("records")
    assert row["gate"] == "fail" and row["ratio_ci95_low"] > 1.05

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1" and suite.get("skipped") == "0"
    (case,) = suite.findall("testcase")
    assert case.get("name") == "slowed vs model" and case.find("failure") is not None
    assert "slower" in case.find("failure").get("message")

    text = summary.read_text()
    assert text.startswith("### edgebench compare: FAILED") and "| slowed | model | local |" in text and "❌ fail" in text


def test_a_byte_identical_copy_passes_and_the_summary_is_appended(models, tmp_path):
    base, _, copy = models
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    proc = edgebench("compare", base, copy, *GATE, "--out", tmp_path / "out", "--junit", junit,
                     "--summary-md", summary, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (row,) = pd.read_csv(tmp_path / "out" / "comparison.csv").to_dict("records")
    assert row["gate"] == "pass" and row["ratio_ci95_high"] <= 1.05
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    (case,) = suite.findall("testcase")
    assert case.find("failure") is None and case.find("skipped") is None
    text = summary.read_text()
    assert text.startswith("earlier step\n### edgebench compare: passed") and "✅ pass" in text


def test_an_undecided_comparison_has_its_own_exit_code(models, tmp_path):
    base, _, copy = models
    # no slowdown allowed at all, on two identical files: the interval straddles 1 (it excludes the truth in
    # under 0.5% of comparisons), so the gate can neither pass nor fail
    proc = edgebench("compare", base, copy, "--max-slowdown", "0", "--max-time", "3", "--round-time", "0.05",
                     "-q", "--out", tmp_path / "out", "--junit", tmp_path / "j.xml", timeout=300)
    assert proc.returncode == EXIT_INCONCLUSIVE, proc.stderr
    assert any(ln.startswith("gate INCONCLUSIVE") for ln in proc.stderr.splitlines())
    case = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert case.find("skipped") is not None


def test_without_a_gate_flag_compare_exits_0_and_writes_no_gate(models, tmp_path):
    base, slowed, _ = models
    proc = edgebench("compare", base, slowed, "--max-time", "20", "--round-time", "0.05", "-q", "--out",
                     tmp_path / "out", timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = pd.read_csv(tmp_path / "out" / "comparison.csv", keep_default_na=False).to_dict("records")
    assert row["verdict"] == "slower" and row["gate"] == ""


def test_the_gate_works_on_two_stored_result_folders(models, tmp_path):
    base, slowed, _ = models
    for name, model in (("a", base), ("b", slowed)):
        shutil.copyfile(model, tmp_path / "m.onnx")  # one variant name on both sides, as for two runs of one model
        proc = edgebench("bench", tmp_path / "m.onnx", "--processes", "4", "--min-time", "0.2", "--threads", "1",
                         "-q", "--out", tmp_path / name, timeout=300)
        assert proc.returncode == 0, proc.stderr
    proc = edgebench("compare", tmp_path / "a", tmp_path / "b", "--max-slowdown", "0.05", "--out",
                     tmp_path / "out", timeout=300)
    assert proc.returncode == EXIT_GATE_FAILED, proc.stderr + proc.stdout
    assert "separate runs" in proc.stdout + proc.stderr or "drift" in proc.stdout + proc.stderr
