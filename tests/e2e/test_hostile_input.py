"""Hostile but realistic input to `edgebench bench` and friends: one line that names the thing, never a
traceback, and nothing measured on input that would give a wrong number."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from targets.local import LocalTarget
from tests import onnx_models
from tests.e2e.test_bench_cli import FAST, assert_one_line_error, edgebench


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits classifier: input x [N,1,8,8], output [N,10]."""
    return onnx_models.mlp(tmp_path_factory.mktemp("hostile") / "mlp.onnx")


# ------------------------------------------------------------------ defect 6: control characters in names


@pytest.mark.parametrize("name", ["b\nc.onnx", "tab\there.onnx", "bell\x07.onnx"])
def test_a_file_name_with_a_control_character_is_refused_before_anything_runs(tmp_path, mlp, name):
    odd = tmp_path / name
    shutil.copy(mlp, odd)
    out = tmp_path / "out"
    proc = edgebench("bench", odd, mlp, "--out", out, *FAST)
    shown = ascii(name)[1:-1]
    assert_one_line_error(proc, shown, "control character", "rename")
    assert "unexpected" not in proc.stderr and not out.exists()


def test_compare_refuses_a_control_character_or_a_non_utf8_name_before_making_its_folder(tmp_path, mlp):
    for name in ("c\nd.onnx", os.fsdecode(b"\xff.onnx")):
        odd = tmp_path / name
        shutil.copy(mlp, odd)
        out = tmp_path / "cmp"
        proc = edgebench("compare", odd, mlp, "--out", out, "-q")
        assert_one_line_error(proc, "rename")
        assert not out.exists()


def test_an_artifact_folder_with_a_control_character_in_its_manifest_is_refused(tmp_path, mlp):
    folder = tmp_path / "art"
    folder.mkdir()
    shutil.copy(mlp, folder / "model.onnx")
    (folder / "manifest.json").write_text('{"variant": "fp32\\r", "model": "m"}')
    assert_one_line_error(edgebench("bench", folder, "--out", tmp_path / "out", *FAST), "control character")


def test_a_corrupt_manifest_is_that_models_failure_row_and_the_others_are_measured(tmp_path, mlp):
    folder = tmp_path / "art"
    folder.mkdir()
    shutil.copy(mlp, folder / "model.onnx")
    (folder / "manifest.json").write_text('{"variant": ')
    out = tmp_path / "out"
    proc = edgebench("bench", folder, mlp, "--out", out, *FAST)
    assert proc.returncode == 1 and "manifest.json cannot be read" in proc.stderr and "Traceback" not in proc.stderr
    text = (out / "summary.csv").read_text()
    assert "bad_manifest" in text and ",ok," in text


# ------------------------------------------------------------------ defect 7: --data validated before measuring


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


X = np.random.default_rng(0).standard_normal((20, 1, 8, 8)).astype(np.float32)
X_NAN = X.copy()
X_NAN[3, 0, 2, 5] = np.nan
BAD_DATA = [
    ("labels_negative", {"x": X, "y": np.array([0] * 7 + [-1] * 13)}, ["y[7] = -1", "negative"]),
    ("labels_nan", {"x": X, "y": np.array([0.0] * 4 + [np.nan] * 16)}, ["'y'", "NaN", "index 4"]),
    ("labels_short", {"x": X, "y": np.zeros(5, np.int64)}, ["'x' has 20 rows", "y has 5 labels"]),
    ("labels_fraction", {"x": X, "y": np.array([1.0, 2.5] * 10)}, ["y[1] = 2.5", "whole number"]),
    ("labels_too_big", {"x": X, "y": np.array([1] * 19 + [10])}, ["y[19] = 10", "10 classes"]),
    ("labels_2d", {"x": X, "y": np.zeros((20, 2), np.int64)}, ["shape [20, 2]", "(N,)"]),
    ("x_nan", {"x": X_NAN, "y": np.zeros(20, np.int64)}, ["'x'", "(3, 0, 2, 5)", "finite"]),
    ("x_inf_named", {"input_x": X, "x": np.full((20, 1, 8, 8), np.inf, np.float32)}, ["'x'", "(0, 0, 0, 0)"]),
    ("x_empty", {"x": X[:0], "y": np.zeros(0, np.int64)}, ["'x' has no rows"]),
    ("strings", {"x": X, "y": np.array(["cat"] * 20)}, ["'y' holds <U3 values", "integer labels"]),
]


@pytest.mark.parametrize("case, arrays, words", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_refused_before_measuring_naming_the_array_and_the_first_bad_index(tmp_path, mlp, case, arrays,
                                                                                      words):
    data = _npz(tmp_path / f"{case}.npz", **arrays)
    out = tmp_path / "out"
    proc = edgebench("bench", mlp, "--data", data, "--out", out, *FAST)
    assert_one_line_error(proc, str(data), *words)
    assert not (out / "samples.csv").exists()


def test_a_file_that_is_not_an_npz_is_named(tmp_path, mlp):
    bad = tmp_path / "data.npz"
    bad.write_bytes(b"not a zip at all")
    assert_one_line_error(edgebench("bench", mlp, "--data", bad, *FAST), str(bad), "np.savez")
    single = tmp_path / "one.npz"
    with open(single, "wb") as f:
        np.save(f, X)
    assert_one_line_error(edgebench("bench", mlp, "--data", single, *FAST), "single array")


def test_good_labels_as_whole_floats_still_measure_accuracy(tmp_path, mlp):
    data = _npz(tmp_path / "ok.npz", x=X, y=np.arange(20, dtype=np.float64) % 10)
    out = tmp_path / "out"
    proc = edgebench("bench", mlp, "--data", data, "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in (out / "summary.csv").read_text().splitlines()[0]


def test_the_runner_refuses_bad_labels_itself_without_a_traceback(tmp_path, mlp):
    """A board gets only the runner: it must not count a label of -1 as a class either."""
    data = _npz(tmp_path / "neg.npz", x=X, y=np.array([2] * 10 + [-1] * 10))
    spec = {"files": {"model": str(mlp), "data": str(data)}, "accuracy": True, "min_iterations": 2,
            "min_time_s": 0.0, "warmup": {"min_iterations": 1, "min_time_s": 0.0}}
    doc = LocalTarget().run(spec, timeout=60)
    assert doc["status"] == "bad_data" and "y[10] is -1" in doc["error"] and "Traceback" not in doc["error"]


def test_compress_and_compare_read_data_by_the_same_rules(tmp_path, mlp):
    from export.data import read_npz
    from targets.errors import EdgebenchError

    data = _npz(tmp_path / "xnan.npz", x=X_NAN, y=np.zeros(20, np.int64))
    with pytest.raises(EdgebenchError, match=r"'x' holds NaN or infinity at index \(3, 0, 2, 5\)"):
        read_npz(data)
    proc = edgebench("compare", mlp, mlp, "--data", data, "--out", tmp_path / "c", "-q")
    assert_one_line_error(proc, "(3, 0, 2, 5)")


# ------------------------------------------------------------------ flags: refused up front, one line each

RED_TEAM = [
    (["bench", "{model}", "--cpu", "5-2"], ["--cpu", "runs backwards", "2-5"]),
    (["bench", "{model}", "--cpu", "99"], ["--cpu 99", "core 99", "pick among"]),
    (["bench", "{model}", "--min-time", "nan"], ["--min-time", "not a finite number"]),
    (["bench", "{model}", "--max-time", "inf"], ["--max-time", "not a finite number"]),
    (["bench", "{model}", "--seed", "-1"], ["--seed must be 0 or more"]),
    (["bench", "{model}", "--out", "{file}"], ["is a file", "give a folder"]),
    (["bench", "{model}", "--python", "/no/such/python"], ["--python /no/such/python", "no such executable"]),
    (["bench", "{model}", "--target", "pi\nx"], ["bad target", "pi\\nx"]),
    (["bench", "{model}", "--data", "{tmp}"], ["--data", "no such file"]),
    (["compare", "{model}", "{model}", "--seed", "-1"], ["--seed must be 0 or more"]),
    (["compare", "{model}", "{model}", "--precision", "-0.1"], ["--precision", "must not be negative"]),
    (["compress", "--model", "zoo:digits-cnn", "--variants", "fp32", "--out", "{tmp}/a", "--finetune-epochs", "-5"],
     ["--finetune-epochs -5", "0 or more"]),
    (["compress", "--model", "zoo:digits-cnn", "--variants", "fp32", "--out", "{file}"], ["--out", "is a file"]),
    (["compress", "--model", "zoo:digits-cnn", "--variants", "fp32", "--out", "{tmp}/a", "--weights", "{file}"],
     ["cannot load weights", "empty file"]),
]


@pytest.mark.parametrize("argv, words", RED_TEAM, ids=[" ".join(a[:1] + a[2:]) for a, _ in RED_TEAM])
def test_bad_flags_are_one_line_naming_the_flag(tmp_path, mlp, capsys, argv, words):
    from harness.cli import main

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    argv = [a.format(model=mlp, file=empty, tmp=tmp_path) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit for a flag it refuses
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (2, 3) and len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


def test_a_path_that_is_not_utf8_is_refused(tmp_path, mlp, capsys):
    from harness.cli import main

    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xff.onnx"))
    shutil.copy(mlp, odd)
    assert main(["bench", str(odd), "--out", str(tmp_path / "out")]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("code, words", [(28, ["No space left on device", "free some space"]),
                                         (13, ["Permission denied", "writable"])])
def test_an_os_error_no_closer_code_explained_names_the_path(tmp_path, monkeypatch, capsys, code, words):
    """The CLI's last line of defence: an OSError about a file is that file and what to do, not `unexpected`."""
    import harness.commands.report as report
    from harness.cli import main

    where = tmp_path / "results" / "summary.csv"

    def full_disk(args):
        raise OSError(code, os.strerror(code), str(where))

    monkeypatch.setattr(report, "run", full_disk)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {where}: ") and "unexpected" not in err and len(err.splitlines()) == 1
    for word in words:
        assert word in err, err
