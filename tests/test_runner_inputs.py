"""How the runner gives a model's inputs their shapes and values (targets/runner.py, prepare_inputs).

Real onnxruntime sessions on small real models; the end-to-end cases run the runner as a subprocess.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from targets import runner
from targets.local import LocalTarget
from tests import onnx_models

FAST = {"min_iterations": 5, "min_time_s": 0.05, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}


def run(spec: dict) -> dict:
    return LocalTarget().run({**FAST, **spec}, timeout=60)


def plan(model, **spec) -> runner.Inputs:
    return runner.prepare_inputs(ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]), spec)


def failure(model, **spec) -> runner.RunnerError:
    with pytest.raises(runner.RunnerError) as info:
        plan(model, **spec)
    return info.value


@pytest.fixture
def stream(tmp_path):
    return onnx_models.streaming(tmp_path / "stream.onnx")


def test_one_error_names_every_unsized_input_and_every_input_without_a_value(stream):
    err = failure(stream)
    assert err.status == "bad_shape"
    text = str(err)
    assert "2 inputs" in text and "input[1,?] (axis 1 unnamed)" in text and "state[2,?,8] (axis 1 unnamed)" in text
    assert "--shape input=1,D1 --shape state=2,D2,8" in text and "None" not in text
    assert "sr (int64 scalar)" in text and "--input sr=VALUE" in text and "--input sr=random" in text
    assert len(text.splitlines()) == 1


def test_a_scalar_gets_exactly_the_value_given_and_says_so(stream):
    p = plan(stream, shapes={"input": [1, 16], "state": [2, 1, 8]}, values={"sr": {"constant": 16000}})
    sr = p.feeds["sr"]
    assert sr.shape == () and sr.dtype == np.int64 and int(sr) == 16000
    assert {r["name"]: (r["source"], r["value"]) for r in p.report} == {
        "input": ("random", None), "state": ("random", None), "sr": ("constant", 16000)}


def test_integer_and_scalar_inputs_are_never_invented(tmp_path, stream):
    ids = onnx_models.token_embedding(tmp_path / "ids.onnx")
    err = failure(ids, shapes={"ids": [1, 8]})
    assert err.status == "bad_input" and "ids (int64 tensor)" in str(err)
    p = plan(ids, shapes={"ids": [1, 8]}, values={"ids": {"random": True}})  # the explicit opt-in
    assert p.feeds["ids"].dtype == np.int64 and p.report[0]["source"] == "random"
    err = failure(stream, shapes={"input": [1, 4], "state": [2, 1, 8]}, values={"sr": {"constant": 16000.5}})
    assert err.status == "bad_input" and "whole number" in str(err)


def test_named_dimensions_share_their_size_across_inputs(tmp_path):
    model = onnx_models.streaming(tmp_path / "named.onnx", named=True)
    err = failure(model, values={"sr": {"constant": 8000}})
    assert "--shape input=1,sequence" in str(err) and "state" not in str(err).split(";")[0].split(":")[1]
    p = plan(model, shapes={"input": [3, 32]}, values={"sr": {"constant": 8000}})
    assert p.feeds["state"].shape == (2, 3, 8)  # `batch` is 3 wherever it appears
    assert p.batch == 3


def test_a_npy_value_sets_the_shape_and_a_number_fills_a_tensor(tmp_path, stream):
    state = np.arange(2 * 1 * 8, dtype=np.float64).reshape(2, 1, 8)
    np.save(tmp_path / "state.npy", state)
    p = plan(stream, files={"s": str(tmp_path / "state.npy")}, shapes={"input": [1, 4]},
             values={"state": {"file": "s"}, "sr": {"constant": 16000}})
    assert p.feeds["state"].dtype == np.float32 and np.array_equal(p.feeds["state"], state)
    assert p.report[1]["value"] == "state.npy"
    p = plan(stream, shapes={"input": [1, 4], "state": [2, 1, 8]},
             values={"state": {"constant": 0}, "sr": {"constant": 1}})
    assert not p.feeds["state"].any() and p.feeds["state"].shape == (2, 1, 8)
    np.save(tmp_path / "sr.npy", np.array(16000.5))
    err = failure(stream, files={"s": str(tmp_path / "sr.npy")}, shapes={"input": [1, 4], "state": [2, 1, 8]},
                  values={"sr": {"file": "s"}})
    assert err.status == "bad_input" and "float64" in str(err) and "int64" in str(err)


def test_data_arrays_named_after_the_inputs_feed_them(tmp_path, stream):
    data = tmp_path / "d.npz"
    rows = np.random.default_rng(0).standard_normal((10, 32)).astype(np.float32)
    np.savez(data, input=rows, state=np.zeros((2, 1, 8), np.float32), sr=np.int64(16000))
    p = plan(stream, files={"data": str(data)})
    assert np.array_equal(p.feeds["input"], rows[:1]) and int(p.feeds["sr"]) == 16000
    assert [r["source"] for r in p.report] == ["data", "data", "data"]
    np.savez(data, input=rows, sr=np.int64(16000), srate=np.int64(8000))
    err = failure(stream, files={"data": str(data)}, shapes={"state": [2, 1, 8]})
    assert err.status == "bad_data" and "srate" in str(err)


def test_the_original_data_contract_still_feeds_a_one_input_model(tmp_path):
    import onnx

    proto = onnx.load(str(onnx_models.mlp(tmp_path / "mlp.onnx")))
    proto.graph.input[0].name = proto.graph.node[0].input[0] = "input"  # as edgebench's exporter names it
    model = tmp_path / "input.onnx"
    onnx.save(proto, str(model))
    data = onnx_models.digits_npz(tmp_path / "d.npz", n=10)
    doc = run({"files": {"model": str(model), "data": str(data)}, "batch": 4, "accuracy": True})
    assert doc["status"] == "ok", doc["error"]
    assert doc["inputs"][0]["source"] == "data" and doc["inputs"][0]["value"] == "x"
    assert doc["inputs"][0]["shape"] == [4, 1, 8, 8] and doc["accuracy"]["n"] == 10


def test_accuracy_walks_the_rows_of_every_data_input(tmp_path):
    model = onnx_models.two_inputs(tmp_path / "add.onnx")
    a = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0]]
    data = tmp_path / "d.npz"
    np.savez(data, a=a, b=np.zeros_like(a), y=np.array([0, 1, 2, 1, 1]))
    doc = run({"files": {"model": str(model), "data": str(data)}, "batch": 2, "accuracy": True})
    assert doc["status"] == "ok", doc["error"]
    cm = np.array(doc["accuracy"]["confusion"])
    assert doc["accuracy"]["n"] == 5 and np.trace(cm) == 4  # argmax(a + b) is right for all but the last row


def test_the_batch_reported_is_the_batch_run(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}, "batch": 4, "shapes": {"x": [1, 1, 8, 8]}})
    assert doc["status"] == "ok" and doc["batch_size"] == 1
