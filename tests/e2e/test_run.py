"""`edgebench run` end to end on a small real experiment: build, measure, report, resume, fail fast."""

from __future__ import annotations

import json
import subprocess
import time

import pandas as pd
import pytest

from tests.e2e.test_bench_cli import assert_one_line_error, edgebench, interrupt_after

EXPERIMENT = """
name = "small"
variants = ["fp32", "prune-ch:0.5", "cluster:4+int8"]
[[models]]
name = "cnn"
model = "zoo:digits-cnn"
[measure]
processes = 2
min_time_s = 0.1
min_iterations = 5
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    (folder / "exp.toml").write_text(EXPERIMENT)
    proc = edgebench("run", folder / "exp.toml", "--out", folder / "out", timeout=900)
    return folder, proc


def test_run_builds_measures_and_reports(finished_run):
    folder, proc = finished_run
    out = folder / "out"
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["variant"]) == ["cluster:4+int8", "fp32", "prune-ch:0.5"]
    assert set(summary["status"]) == {"ok"} and set(summary["model"]) == {"cnn"}
    by_variant = summary.set_index("variant")
    assert by_variant.loc["fp32", "accuracy"] > 0.9
    # the runner (on the target) and compress (in-process) run the same ONNX file on the same split
    built = pd.read_csv(out / "artifacts" / "cnn" / "artifacts.csv").set_index("variant")
    for variant in summary["variant"]:
        assert by_variant.loc[variant, "accuracy"] == pytest.approx(built.loc[variant, "accuracy"], abs=1e-6)
    fp32 = summary.set_index("variant").loc["fp32"]
    assert summary.set_index("variant").loc["prune-ch:0.5", "params"] < fp32["params"]
    report = (out / "report.md").read_text()
    assert "prune-ch:0.5" in report and "![Accuracy vs latency](accuracy_vs_latency.png)" in report
    assert (out / "accuracy_vs_latency.png").exists()
    assert "median ms" in proc.stdout and "report:" in proc.stdout
    artifacts = pd.read_csv(out / "artifacts" / "cnn" / "artifacts.csv")
    assert len(artifacts) == 3


def test_report_command_rewrites_the_report(finished_run):
    folder, _ = finished_run
    out = folder / "out"
    (out / "report.md").unlink()
    proc = edgebench("report", out)
    assert proc.returncode == 0 and (out / "report.md").exists()


def test_a_killed_run_resumes_without_remeasuring_or_duplicates(finished_run, tmp_path):
    folder, _ = finished_run
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT.replace("processes = 2", "processes = 3").replace("0.1", "0.4"))
    out = tmp_path / "out"
    # the artifacts are the finished run's (same recipe and data): copy them so only measuring remains
    out.mkdir(exist_ok=True)
    subprocess.run(["cp", "-r", str(folder / "out" / "artifacts"), str(out)], check=True)
    journal = out / "processes.jsonl"

    def processes() -> list[dict]:
        return [r for r in map(json.loads, journal.read_text().splitlines()) if r["kind"] == "process"]

    interrupt_after(["run", exp, "--out", out, "-q"], journal, 4, timeout=300)
    before = len(processes())
    assert 4 <= before < 9
    again = edgebench("run", exp, "--out", out, timeout=600)
    assert again.returncode == 0, again.stderr
    assert len(processes()) == 9  # 3 variants x 3 processes, none measured twice
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and summary["variant"].is_unique and set(summary["n_processes"]) == {3}
    assert (summary["status"] == "ok").all()
    third = edgebench("run", exp, "--out", out, timeout=600)
    assert third.returncode == 0 and len(pd.read_csv(out / "summary.csv")) == 3
    records = processes()
    assert len(records) == len({(r["variant"], r["process_index"]) for r in records}) == 9


@pytest.mark.parametrize("change, words", [
    (('"fp32", ', '"fp32", "prune-xx:3", '), ["prune-xx:3", "Valid forms"]),
    (('zoo:digits-cnn', 'zoo:nope'), ["nope"]),
])
def test_bad_experiments_fail_before_any_work(tmp_path, change, words):
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT.replace(*change))
    start = time.monotonic()
    proc = edgebench("run", exp, "--out", tmp_path / "out", "-q", timeout=120)
    assert time.monotonic() - start < 60
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "out" / "artifacts").exists()


def test_an_unreachable_target_fails_before_any_work(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    proc = edgebench("run", exp, "--out", tmp_path / "out", "-q", "--target", "ssh://nobody@127.0.0.1:1",
                     timeout=120)
    assert_one_line_error(proc, "127.0.0.1")
    assert not (tmp_path / "out" / "artifacts").exists()


def test_print_default_is_valid_toml():
    proc = edgebench("run", "--print-default")
    assert proc.returncode == 0 and 'model = "zoo:resnet"' in proc.stdout


@pytest.mark.slow  # builds three INT8 forms and measures 4 files x 2 thread counts x 4 processes (~1-2 min)
def test_every_int8_form_and_thread_count_is_measured_and_the_report_says_what_to_ship(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text('name = "ship"\nvariants = ["fp32", "fp32+int8"]\n[[models]]\nname = "cnn"\n'
                   'model = "zoo:digits-cnn"\n[build]\nint8_forms = "all"\n'
                   '[measure]\nthreads = "cores"\nprocesses = 4\nmin_time_s = 0.1\nmin_iterations = 5\n')
    proc = edgebench("run", exp, "--out", tmp_path / "out", timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    chosen = summary.set_index("variant").loc["fp32+int8", "int8_form"].iloc[0]
    assert set(summary["variant"]) == {"fp32", "fp32+int8"} | {f"fp32+int8:{f}" for f in ("reduce", "u8s8", "s8s8")
                                                               if f != chosen}  # the shipped file once
    assert f"fp32+int8:{chosen} is the file fp32+int8 shipped" in proc.stdout + proc.stderr
    cores = json.loads((tmp_path / "out" / "machine.json").read_text())["targets"]["local"]["cores"]
    assert set(summary["threads"]) == set(range(1, cores + 1))
    report = (tmp_path / "out" / "report.md").read_text()
    ship = report[report.index("### What to ship here"):]
    assert "- Ship **" in ship and "- INT8 form for fp32: **" in ship and "95% CI" in ship
    if cores > 1:
        assert "- Threads for fp32: **" in ship
