"""`edgebench compare`: the command end to end on tiny real models, stored results, files and errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.compare import COMPARISON_COLUMNS, pyperf_filename
from harness.results import SAMPLE_COLUMNS, SCHEMA_VERSION
from tests import onnx_models

CONTRACT = ["baseline", "candidate", "target", "ratio_median", "ratio_ci95_low", "ratio_ci95_high", "p_value",
            "n_rounds", "verdict"]
FAST = ["--round-time", "0.05", "--block-size", "10", "--drop", "2", "--threads", "1", "-q"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_comparison_csv_starts_with_the_contract_columns():
    assert list(COMPARISON_COLUMNS[:len(CONTRACT)]) == CONTRACT


def test_two_tiny_models_end_to_end(tmp_path, capsys):
    small = onnx_models.mlp(tmp_path / "small.onnx", hidden=16)
    big = onnx_models.mlp(tmp_path / "big.onnx", hidden=2048)
    out = tmp_path / "out"
    assert main(["compare", str(small), str(big), "--out", str(out), "--max-time", "20", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "big is" in printed and "x slower than small, 95% CI" in printed
    with open(out / "comparison.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f))[:len(CONTRACT)] == CONTRACT
    (row,) = read_rows(out / "comparison.csv")
    assert (row["baseline"], row["candidate"], row["target"], row["verdict"]) == ("small", "big", "local", "slower")
    assert float(row["ratio_ci95_low"]) > 1.0 and float(row["p_value"]) < 0.01 and int(row["n_rounds"]) >= 9
    assert int(row["schema_version"]) == SCHEMA_VERSION
    # pyperf reads the same samples (its t-test may call them "not significant" under load: not asserted)
    done = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(out / pyperf_filename("small")),
                           str(out / pyperf_filename("big"))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and ("slower" in done.stdout or "not significant" in done.stdout), done.stdout


def test_three_models_against_a_chosen_baseline(tmp_path, capsys):
    small = onnx_models.mlp(tmp_path / "small.onnx", hidden=16)
    mid = onnx_models.mlp(tmp_path / "mid.onnx", hidden=512)
    big = onnx_models.mlp(tmp_path / "big.onnx", hidden=2048)
    out = tmp_path / "out"
    code = main(["compare", str(small), str(mid), str(big), "--baseline", str(mid), "--out", str(out),
                 "--max-time", "30", *FAST])
    assert code == 0, capsys.readouterr().err
    rows = {r["candidate"]: r for r in read_rows(out / "comparison.csv")}
    assert set(rows) == {"small", "big"} and {r["baseline"] for r in rows.values()} == {"mid"}
    assert rows["small"]["verdict"] == "faster" and rows["big"]["verdict"] == "slower"
    assert float(rows["small"]["ratio_ci95_high"]) < 1.0 < float(rows["big"]["ratio_ci95_low"])


def write_results(folder: Path, variant: str, medians: list[float], seed: int) -> Path:
    """A samples.csv as edgebench 0.1 wrote it (the CONTRACT's columns only): old folders keep loading."""
    rng = np.random.default_rng(seed)
    rows = [(SCHEMA_VERSION, "run", "local", variant, 1, "", p, i, round(m * rng.lognormal(0, 0.03), 6))
            for p, m in enumerate(medians) for i in range(50)]
    folder.mkdir()
    with open(folder / "samples.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([SAMPLE_COLUMNS[:9], *rows])
    return folder


def test_stored_results_are_compared_with_a_drift_warning(tmp_path, capsys):
    monday = write_results(tmp_path / "monday", "fp32", [1.0, 1.05, 0.97, 1.02, 0.99, 1.01], seed=1)
    tuesday = write_results(tmp_path / "tuesday", "fp32", [1.5, 1.45, 1.56, 1.52, 1.49, 1.51], seed=2)
    out = tmp_path / "out"
    assert main(["compare", str(monday), str(tuesday), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: the two sides were measured in separate runs, not interleaved" in printed
    (row,) = read_rows(out / "comparison.csv")
    assert (row["baseline"], row["candidate"], row["verdict"]) == ("monday:fp32", "tuesday:fp32", "slower")
    assert row["method"] == "independent-processes" and row["n_rounds"] == "6"
    assert 1.4 < float(row["ratio_median"]) < 1.6
    assert (out / pyperf_filename("monday:fp32")).exists() and (out / pyperf_filename("tuesday:fp32")).exists()


def test_threshold_is_checked_for_stored_results_too(tmp_path, capsys):
    a = write_results(tmp_path / "a", "fp32", [1.0] * 5, seed=1)
    b = write_results(tmp_path / "b", "fp32", [1.0] * 5, seed=2)
    assert main(["compare", str(a), str(b), "--threshold", "2", "--out", str(tmp_path / "out")]) == 2
    assert "--threshold must be between 0 and 1" in capsys.readouterr().err


def test_results_folder_without_samples_is_refused(tmp_path, capsys):
    a = write_results(tmp_path / "a", "fp32", [1.0] * 5, seed=1)
    b = tmp_path / "b"
    b.mkdir()
    (b / "summary.csv").write_text("schema_version,variant\n1,fp32\n")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "has no samples.csv" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    small = onnx_models.mlp(tmp_path / "small.onnx")
    assert main(["compare", str(small), str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx: no such file or folder" in capsys.readouterr().err


def test_a_broken_model_file_is_a_clear_error(tmp_path, capsys):
    small = onnx_models.mlp(tmp_path / "small.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert main(["compare", str(small), str(broken), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.onnx" in err


def test_a_model_that_fails_to_run_stops_at_once(tmp_path, capsys):
    """Fixed shapes that the runner cannot feed: a symbolic axis other than the batch, no --shape."""
    small = onnx_models.mlp(tmp_path / "small.onnx")
    embed = onnx_models.token_embedding(tmp_path / "embed.onnx")
    code = main(["compare", str(small), str(embed), "--out", str(tmp_path / "out"), *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot measure these models" in err and "--shape" in err


def test_an_unbounded_interval_limit_is_an_empty_cell(tmp_path, capsys):
    """Three processes per side cannot give a 95% interval: its limits are 'not measured', never 0.0."""
    a = write_results(tmp_path / "a", "fp32", [1.0, 1.02, 0.98], seed=1)
    b = write_results(tmp_path / "b", "fp32", [1.5, 1.52, 1.48], seed=2)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    assert "unbounded" in capsys.readouterr().out
    (row,) = read_rows(tmp_path / "out" / "comparison.csv")
    assert (row["ratio_ci95_low"], row["ratio_ci95_high"], row["verdict"]) == ("", "", "inconclusive")
    assert 1.4 < float(row["ratio_median"]) < 1.6


def test_stored_runs_fed_different_input_shapes_are_flagged(tmp_path, capsys):
    """Two real bench runs of one model with another --shape: the ratio compares different work."""
    model = onnx_models.token_embedding(tmp_path / "embed.onnx")
    runs = []
    for seq in (8, 64):
        runs.append(tmp_path / f"seq{seq}")
        assert main(["bench", str(model), "--shape", f"ids=1,{seq}", "--input", "ids=random", "--processes", "4",
                     "--min-time", "0.05", "--threads", "1", "--out", str(runs[-1]), "-q"]) == 0
    capsys.readouterr()
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "warning: the two runs fed different input shapes (seq8:embed: ids[1,8]; seq64:embed: ids[1,64])" in printed
    (row,) = read_rows(tmp_path / "out" / "comparison.csv")
    assert "different input shapes" in row["warnings"]
    # the same shape on both sides: no such warning
    assert main(["compare", str(runs[0]), str(runs[0]), "--out", str(tmp_path / "same")]) == 0
    assert "different input shapes" not in capsys.readouterr().out


@pytest.mark.slow
def test_a_slow_model_is_decided_within_the_default_budget(tmp_path, capsys):
    """Tens of ms a call (a MatMul chain) against twice the chain: 40-call blocks made a round 12 s long
    and left such a pair `inconclusive` after 60 s; blocks sized by call time decide it."""
    slow = onnx_models.matmul_chain(tmp_path / "chain8.onnx", depth=8)
    slower = onnx_models.matmul_chain(tmp_path / "chain16.onnx", depth=16)
    out = tmp_path / "out"
    assert main(["compare", str(slower), str(slow), "--threads", "1", "--out", str(out), "-q"]) == 0
    (row,) = read_rows(out / "comparison.csv")
    assert (row["baseline"], row["candidate"], row["verdict"]) == ("chain16", "chain8", "faster"), row
    assert 0.4 < float(row["ratio_median"]) < 0.65 and int(row["n_rounds"]) >= 9
    assert float(row["elapsed_s"]) <= 60.0


@pytest.mark.parametrize("flags, message", [
    (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
    (["--precision", "1.5"], "--precision must be between 0 and 1"),
    (["--min-rounds", "3"], "--min-rounds must be at least 6"),
    (["--block-size", "5", "--drop", "5"], "--drop must be less than --block-size"),
    (["--baseline", "other.onnx"], "--baseline other.onnx is none of the inputs"),
])
def test_bad_options_are_refused_before_measuring(tmp_path, capsys, flags, message):
    a = onnx_models.identity(tmp_path / "a.onnx")
    b = onnx_models.identity(tmp_path / "b.onnx")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), *flags]) == 2
    assert message in capsys.readouterr().err
