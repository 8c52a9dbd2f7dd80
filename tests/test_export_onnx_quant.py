"""Export parity, INT8, evaluation from the ONNX file, graph statistics and artifacts.csv."""

import json
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from export import manifest as mf
from export.data import load_dataset
from export.evaluate import evaluate_onnx
from export.graphfacts import graph_stats
from export.onnx_export import (
    compact_names,
    export_checked,
    export_onnx,
    ort_session,
    parity_check,
    save_model,
)
from export.int8 import FORMS
from export.quantize import quantize_dynamic_int8, quantize_static_int8
from export.train import Recipe, fit
from export.zoo import DigitsCNN
from targets.errors import EdgebenchError
from targets.stored import size_facts
from tests import wild_models


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = load_dataset(None, (1, 1, 8, 8))
    torch.manual_seed(0)
    m = fit(DigitsCNN(width=16), d, Recipe(epochs=3))
    path = tmp_path_factory.mktemp("m") / "model.onnx"
    rec = export_onnx(m, (1, 1, 8, 8), path)
    return m, d, path, rec


def test_export_dynamic_batch_and_parity(trained):
    m, d, path, rec = trained
    assert rec["exporter"] == "legacy" and rec["onnxsim"] == "ok"
    sess = ort_session(path)
    assert sess.run(None, {"input": d.x_test[:5]})[0].shape == (5, 10)
    assert parity_check(path, m, d.x_test[:32]) < 1e-4
    assert not any(i.data_location == onnx.TensorProto.EXTERNAL for i in onnx.load(str(path)).graph.initializer)


def test_dynamo_exporter_matches_torch_with_a_dynamic_batch_and_quantizes(trained, tmp_path):
    m, d, _, _ = trained
    path = tmp_path / "dynamo.onnx"
    rec = export_onnx(m, (1, 1, 8, 8), path, exporter="dynamo")
    assert rec["exporter"] == "dynamo" and rec["onnxsim"] == "ok" and rec["opset"] >= 18
    assert graph_stats(path)["opset"] == rec["opset"] and sorted(p.name for p in tmp_path.iterdir()) == ["dynamo.onnx"]
    assert ort_session(path).run(None, {"input": d.x_test[:7]})[0].shape == (7, 10)
    assert parity_check(path, m, d.x_test[:32]) < 1e-4
    quantize_static_int8(path, tmp_path / "q.onnx", d.x_train, form=FORMS["reduce"])
    assert evaluate_onnx(tmp_path / "q.onnx", d.x_test, d.y_test, 10)["accuracy"] > 0.6


def test_dynamo_exporter_without_onnxscript_says_what_to_install(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if it were not installed
    with pytest.raises(EdgebenchError, match="pip install onnxscript"):
        export_onnx(trained[0], (1, 1, 8, 8), tmp_path / "m.onnx", exporter="dynamo")


def test_legacy_exporter_failure_falls_back_to_dynamo(tmp_path):
    """An activation written as a custom autograd.Function around erfc: the legacy exporter has no
    symbolic for it; auto mode exports with dynamo, proves parity, and records why legacy was left."""
    torch.manual_seed(0)
    m = wild_models.CustomActivationNet().eval()
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    rec = export_checked(m, (1, 1, 8, 8), tmp_path / "m.onnx", x)
    assert rec["exporter"] == "dynamo" and rec["parity_max_abs_diff"] < 1e-4
    assert rec["fallback_from"][0]["exporter"] == "legacy"
    assert rec["fallback_from"][0]["error"].startswith("torch.onnx.export (legacy) failed")
    with pytest.raises(EdgebenchError, match=r"\(legacy\) failed.*Try --exporter dynamo"):
        export_checked(m, (1, 1, 8, 8), tmp_path / "legacy.onnx", x, exporter="legacy")
    assert not (tmp_path / "legacy.onnx").exists()


def test_a_value_frozen_by_the_legacy_exporter_is_never_shipped(tmp_path):
    """numpy inside forward: the legacy exporter writes the value it traced as a constant, a file that
    runs and is wrong. Parity on real inputs rejects it; dynamo traces the numpy code and is right."""
    m = wild_models.NumpyInside().eval()
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    rec = export_checked(m, (1, 1, 8, 8), tmp_path / "m.onnx", x)
    assert rec["exporter"] == "dynamo" and rec["parity_max_abs_diff"] < 1e-4
    assert "differs from PyTorch" in rec["fallback_from"][0]["error"]
    with pytest.raises(EdgebenchError, match="differs from PyTorch"):
        export_checked(m, (1, 1, 8, 8), tmp_path / "legacy.onnx", x, exporter="legacy")


def _corrupt(src, dst, scale):
    proto = onnx.load(str(src))
    for init in proto.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim == 4:  # every conv weight
            init.CopyFrom(numpy_helper.from_array((a * scale + 0.3).astype(a.dtype), init.name))
    save_model(proto, dst)


def test_parity_catches_a_broken_export(trained, tmp_path):
    m, d, path, _ = trained
    _corrupt(path, tmp_path / "broken.onnx", -1.0)
    with pytest.raises(EdgebenchError, match="differs from PyTorch"):
        parity_check(tmp_path / "broken.onnx", m, d.x_test[:32])


def test_accuracy_comes_from_the_onnx_file(trained, tmp_path):
    m, d, path, _ = trained
    good = evaluate_onnx(path, d.x_test, d.y_test, 10)
    assert good["accuracy"] > 0.6 and np.sum(good["confusion_matrix"]) == len(d.y_test)
    _corrupt(path, tmp_path / "bad.onnx", -1.0)
    bad = evaluate_onnx(tmp_path / "bad.onnx", d.x_test, d.y_test, 10)
    assert bad["accuracy"] < good["accuracy"] - 0.3
    assert set(bad) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "gmean", "confusion_matrix"}


def test_static_int8_is_smaller_qdq_and_accurate(trained, tmp_path):
    # the reduce form: U8S8 kernels with 7-bit weights, accurate on every x86 CPU (plain U8S8 saturates
    # without VNNI: tests/e2e/test_int8_cpu.py shows it under an emulated Haswell)
    m, d, path, _ = trained
    rec = quantize_static_int8(path, tmp_path / "q.onnx", d.x_train, form=FORMS["reduce"])
    assert rec["format"] == "QDQ" and rec["per_channel"] and rec["activation_type"] == "uint8"
    assert rec["weight_type"] == "int8" and rec["reduce_range"] and rec["n_calibration_samples"] == 256
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert (tmp_path / "q.onnx").stat().st_size < 0.5 * path.stat().st_size  # tiny model: graph overhead
    acc_f = evaluate_onnx(path, d.x_test, d.y_test, 10)["accuracy"]
    acc_q = evaluate_onnx(tmp_path / "q.onnx", d.x_test, d.y_test, 10)["accuracy"]
    assert acc_q > acc_f - 0.03
    with pytest.raises(EdgebenchError, match="unknown calibration"):
        quantize_static_int8(path, tmp_path / "x.onnx", d.x_train, form=FORMS["reduce"], calibration="magic")


def test_compact_names_shrinks_a_qdq_file_keeps_its_outputs_and_maps_names_back(trained, tmp_path):
    _, d, path, _ = trained
    quantize_static_int8(path, tmp_path / "q.onnx", d.x_train, form=FORMS["u8s8"])
    (tmp_path / "short").mkdir()
    short = tmp_path / "short" / "model.onnx"
    short.write_bytes((tmp_path / "q.onnx").read_bytes())
    rec = compact_names(short)
    assert rec["compacted"] and rec["bytes_after"] == short.stat().st_size < 0.85 * rec["bytes_before"]
    long_graph, short_graph = onnx.load(str(tmp_path / "q.onnx")).graph, onnx.load(str(short)).graph
    assert [i.name for i in short_graph.input] == ["input"] and [o.name for o in short_graph.output] == ["output"]
    names = json.loads((short.parent / rec["names_file"]).read_text())
    assert [names["nodes"][n.name] for n in short_graph.node] == [n.name for n in long_graph.node]
    back = {**names["tensors"], "input": "input", "output": "output", "": ""}
    assert [[back[t] for t in n.input] for n in short_graph.node] == [list(n.input) for n in long_graph.node]
    x = d.x_test[:16]
    np.testing.assert_array_equal(ort_session(short).run(None, {"input": x})[0],
                                  ort_session(tmp_path / "q.onnx").run(None, {"input": x})[0])


def test_compact_names_never_reuses_a_graph_input_name(tmp_path):
    from onnx import TensorProto, helper

    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("t0", "t2")]
    nodes = [helper.make_node("Relu", ["t0"], ["a"], name="first"), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Neg", ["b"], ["t2"], name="last")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi[:1], vi[1:]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    save_model(model, tmp_path / "m.onnx")
    compact_names(tmp_path / "m.onnx")
    g = onnx.load(str(tmp_path / "m.onnx")).graph
    assert [list(n.output) for n in g.node] == [["t1"], ["t3"], ["t2"]]
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(ort_session(tmp_path / "m.onnx").run(None, {"t0": x})[0], np.maximum(x, 0))


def test_dynamic_int8(trained, tmp_path):
    _, d, path, _ = trained
    rec = quantize_dynamic_int8(path, tmp_path / "qd.onnx")
    assert rec["mode"] == "dynamic"
    assert ort_session(tmp_path / "qd.onnx").run(None, {"input": d.x_test[:2]})[0].shape == (2, 10)


def test_graph_stats(trained):
    m, d, path, _ = trained
    s = graph_stats(path)
    # BN folded into conv biases: conv weights + biases, then the linear layer
    assert s["params"] == (9 * 16 + 16) + (16 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 10 + 10)
    assert s["nonzero_params"] <= s["params"]
    # conv1: 8x8x16 outputs x 9 taps, conv2: 8x8x32 x 16*9, conv3: 4x4x32 x 32*9, fc 32x10
    assert s["macs"] == 64 * 16 * 9 + 64 * 32 * 144 + 16 * 32 * 288 + 320
    assert s["peak_activation_bytes"] >= 4 * (64 * 16 + 64 * 32)  # two consecutive feature maps at once
    sizes = size_facts(path)
    assert sizes["model_bytes"] == path.stat().st_size and 0 < sizes["model_zip_bytes"] < sizes["model_bytes"]


def test_int8_files_keep_the_fp32_params_macs_and_peak_activations(trained, tmp_path):
    _, d, path, _ = trained
    quantize_static_int8(path, tmp_path / "q.onnx", d.x_train, form=FORMS["reduce"])
    quantize_dynamic_int8(path, tmp_path / "qd.onnx")
    fp32, static, dynamic = (graph_stats(p) for p in (path, tmp_path / "q.onnx", tmp_path / "qd.onnx"))
    # a quantized weight counts once (its int8 tensor; int32 biases too), never its scale or zero point
    assert static["params"] == dynamic["params"] == fp32["params"]
    assert static["macs"] == dynamic["macs"] == fp32["macs"]
    # dequantized weights are weights, not activations, so the estimates compare (counting them gave 4x fp32)
    assert static["peak_activation_bytes"] <= fp32["peak_activation_bytes"]
    assert dynamic["peak_activation_bytes"] <= 1.1 * fp32["peak_activation_bytes"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(static["quantized_ops"])
    assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} <= set(dynamic["quantized_ops"])


def test_artifacts_csv_round_trip(tmp_path):
    rows = [{"schema_version": 1, "variant": "fp32", "status": "ok", "error": None, "params": 10,
             "accuracy": 0.975, "input_shape": [1, 1, 8, 8], "quantization": None, "reused": False},
            {"schema_version": 1, "variant": "cluster:4", "status": "EdgebenchError", "error": "bad, \"quoted\"",
             "quantization": {"mode": "static", "calibration": "minmax"}}]
    mf.write_artifacts_csv(tmp_path / "a.csv", rows)
    text = (tmp_path / "a.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(mf.CSV_COLUMNS)
    back = mf.read_artifacts_csv(tmp_path / "a.csv")
    assert back[0]["params"] == 10 and back[0]["accuracy"] == 0.975 and back[0]["input_shape"] == "1x1x8x8"
    assert back[0]["macs"] is None and back[0]["reused"] is False  # one boolean convention: true/false
    assert back[1]["error"] == 'bad, "quoted"' and back[1]["quant_calibration"] == "minmax"


def test_first_and_last_layers_can_stay_in_float(trained, tmp_path):
    _, d, path, _ = trained
    rec = quantize_static_int8(path, tmp_path / "k.onnx", d.x_train, form=FORMS["reduce"], keep_float=("first", "last"))
    graph = onnx.load(str(tmp_path / "k.onnx")).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    dequantized = [producers.get(n.input[1]) == "DequantizeLinear" for n in weighted]
    assert len(rec["kept_float"]) == 2 and not dequantized[0] and not dequantized[-1] and all(dequantized[1:-1])
    assert evaluate_onnx(tmp_path / "k.onnx", d.x_test, d.y_test, 10)["accuracy"] > 0.6
    with pytest.raises(EdgebenchError, match="--int8-keep-float nosuchnode: no node of that name"):
        quantize_static_int8(path, tmp_path / "x.onnx", d.x_train, form=FORMS["reduce"], keep_float=("nosuchnode",))
