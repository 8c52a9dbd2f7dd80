"""Facts that hold for any ONNX graph: params / non-zero params, MACs, peak activations, quantized ops.

Real ONNX files only: models built with onnx.helper and run by onnxruntime, INT8 files quantized by
onnxruntime, and third-party files fetched from the package index (tests/corpus.py).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import AttributeProto, TensorProto, numpy_helper

from export.graphfacts import count_params, graph_stats
from harness.modelfile import check_model
from tests import onnx_models
from tests.corpus import files_in
from tests.e2e.test_bench_cli import FAST, edgebench


def test_weights_in_constant_nodes_and_if_loop_subgraphs_are_counted(tmp_path):
    path, weights = onnx_models.constant_weights(tmp_path / "cw.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ones = np.ones((2, 4), dtype=np.float32)
    # the If took a different branch for each sign, so both branches' weights are live parts of the model
    assert not np.allclose(sess.run(None, {"x": ones})[0], -sess.run(None, {"x": -ones})[0])
    want = sum(w.size for w in weights.values())  # float tensors only: the value_ints shape does not count
    want_nonzero = sum(int(np.count_nonzero(w)) for w in weights.values())
    s = graph_stats(path)
    assert (s["params"], s["nonzero_params"]) == (want, want_nonzero) == (99, 71)
    facts = check_model(path).facts  # what `bench` writes: the same counting function
    assert (facts["params"], facts["nonzero_params"]) == (want, want_nonzero)


def test_uncountable_weights_give_a_blank_not_a_zero(tmp_path):
    fed = onnx_models.weights_as_input(tmp_path / "fed.onnx")
    counted = count_params(onnx.load(str(fed)))
    assert counted.params is None and counted.nonzero is None and "'w'" in counted.why
    assert graph_stats(fed)["params"] is None
    # external data that cannot be read: the file is still measurable, its counts are unknown
    model = onnx.load(str(onnx_models.mlp(tmp_path / "mlp.onnx")))
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data",
                    size_threshold=0)
    assert check_model(tmp_path / "ext.onnx").facts["params"] == 64 * 256 + 256 * 10
    with open(tmp_path / "ext.data", "r+b") as f:
        f.truncate(1000)
    check = check_model(tmp_path / "ext.onnx")
    assert check.ok and check.facts["params"] is None and check.facts["nonzero_params"] is None
    # two If branches may each define a constant of the same name: counting by name would be wrong
    path, _ = onnx_models.constant_weights(tmp_path / "cw.onnx")
    model = onnx.load(str(path))
    else_branch = next(a.g for a in model.graph.node[-2].attribute if a.name == "else_branch")
    else_branch.node[0].output[0] = else_branch.node[1].input[1] = "then_w"
    onnx.save(model, str(tmp_path / "same_names.onnx"))
    ort.InferenceSession(str(tmp_path / "same_names.onnx"), providers=["CPUExecutionProvider"])  # valid ONNX
    counted = count_params(model)
    assert counted.params is None and "'then_w'" in counted.why


def test_bench_writes_a_blank_params_cell_for_weights_it_cannot_count(tmp_path):
    fed = onnx_models.weights_as_input(tmp_path / "fed.onnx")
    proc = edgebench("bench", fed, "--out", tmp_path / "out", *FAST)
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(tmp_path / "out" / "summary.csv").iloc[0]
    assert row["status"] == "ok" and pd.isna(row["params"]) and pd.isna(row["nonzero_params"])


def _dequantized_weights(path) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(int8 weight, zero point, axis) of every DequantizeLinear fed by an initializer, read with onnx."""
    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    return [(inits[n.input[0]], inits[n.input[2]], next((a.i for a in n.attribute if a.name == "axis"), 1))
            for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]


def test_int8_per_channel_matmul_counts_each_weight_once_against_its_own_zero_point(mlp_model, int8_model):
    dq = _dequantized_weights(int8_model)
    assert [w.shape for w, _, _ in dq] == [(64, 256), (256, 10)]
    assert {axis for _, _, axis in dq} == {1}  # onnxruntime quantizes a K x N MatMul weight per column
    want_nonzero = sum(int((w != zp.reshape(1, -1)).sum()) for w, zp, _ in dq)
    fp32, int8 = graph_stats(mlp_model), graph_stats(int8_model)
    assert int8["params"] == fp32["params"] == 64 * 256 + 256 * 10  # not the scales, not the zero points
    assert int8["nonzero_params"] == want_nonzero < int8["params"]  # weights rounded onto their zero point
    assert int8["macs"] == fp32["macs"] == 64 * 256 + 256 * 10  # MatMul weights come through DequantizeLinear
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(int8["quantized_ops"])
    assert fp32["quantized_ops"] == []
    assert check_model(int8_model).facts["nonzero_params"] == want_nonzero


def test_fp32_and_int8_peak_activations_compare(mlp_model, int8_model, tmp_path):
    fp32, int8 = (graph_stats(p)["peak_activation_bytes"] for p in (mlp_model, int8_model))
    # live at once in fp32: the 256 hidden floats and their ReLU; dequantized weights (64x256 floats) are not
    assert fp32 == 4 * (256 + 256)
    assert 0 < int8 <= fp32
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(mlp_model), str(tmp_path / "dyn.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
    dyn = graph_stats(tmp_path / "dyn.onnx")
    assert dyn["params"] == 64 * 256 + 256 * 10  # the weight scales multiplied in at run time are not weights
    assert "MatMulInteger" in dyn["quantized_ops"] and dyn["macs"] == 64 * 256 + 256 * 10
    assert dyn["peak_activation_bytes"] <= 2 * fp32


def _independent_count(model: onnx.ModelProto) -> tuple[int, int]:
    """Float initializers + float Constant values over every (sub)graph, by a walk of the protobuf."""
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}

    def tensors(g: onnx.GraphProto):
        yield from g.initializer
        for node in g.node:
            for a in node.attribute:
                if node.op_type == "Constant" and a.type == AttributeProto.TENSOR:
                    yield a.t
                for sub in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
                    yield from tensors(sub)

    arrays = [numpy_helper.to_array(t) for t in tensors(model.graph) if t.data_type in floats]
    return sum(int(np.prod(t.shape)) for t in arrays), sum(int(np.count_nonzero(t)) for t in arrays)


@pytest.mark.parametrize("requirement, pattern", [
    ("rapidocr-onnxruntime==1.4.4", "**/*.onnx"),  # PP-OCR det / rec / cls: every weight in a Constant node
    ("silero-vad==6.2.3", "**/silero_vad.onnx"),  # weights in Constant nodes inside If branches
])
def test_third_party_files_count_their_weights(requirement, pattern):
    for path in files_in(requirement, pattern):
        want = _independent_count(onnx.load(str(path)))
        facts = check_model(path).facts
        assert want[0] > 0 and (facts["params"], facts["nonzero_params"]) == want, path.name


@pytest.mark.slow  # ~6-10 s here: export, calibrate and quantize a real transformer
def test_a_monai_vit_quantizes_and_its_attention_counts(tmp_path, monkeypatch):
    """Issue 10's transformer: INT8 of a ViT crashed in the manifest code (zero points assumed on axis 0)."""
    import torch

    from export.data import load_dataset
    from export.int8 import FORMS
    from export.onnx_export import export_onnx
    from export.quantize import quantize_static_int8
    from tests.corpus import unpacked_wheel

    for requirement in ("monai==1.6.1", "einops==0.8.1"):  # the ViT's patch embedding imports einops
        monkeypatch.syspath_prepend(str(unpacked_wheel(requirement)))
    from monai.networks.nets import ViT

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = ViT(in_channels=1, img_size=(32, 32), patch_size=(8, 8), spatial_dims=2,
                           hidden_size=64, mlp_dim=128, num_layers=2, num_heads=4, classification=True,
                           num_classes=10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.vit(x)[0]

    torch.manual_seed(0)
    model = Logits().eval()
    with torch.no_grad():  # trained-like: fresh LayerNorms are all ones / zeros, stored once by onnxsim
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    data = load_dataset(None, (1, 1, 32, 32))
    export_onnx(model, (1, 1, 32, 32), tmp_path / "vit.onnx")
    quantize_static_int8(tmp_path / "vit.onnx", tmp_path / "vit8.onnx", data.x_train[:32], form=FORMS["reduce"])
    fp32, int8 = graph_stats(tmp_path / "vit.onnx"), graph_stats(tmp_path / "vit8.onnx")
    used = sum(p.numel() for name, p in model.named_parameters() if "norm_cross_attn" not in name)  # unused
    assert fp32["params"] == used + 4  # + the attention scale, GELU's 0.5, sqrt 2, 1
    assert int8["params"] == fp32["params"] and int8["nonzero_params"] <= int8["params"]
    tokens, dim, hidden = 17, 64, 128  # 16 patches + the class token; the MLP's width
    per_layer = (tokens * dim * 3 * dim  # qkv
                 + 2 * tokens * tokens * dim  # QK^T and AV (Einsums), all heads together
                 + tokens * dim * dim  # output projection
                 + 2 * tokens * dim * hidden)  # MLP
    assert fp32["macs"] == int8["macs"] == 16 * dim * 64 + 2 * per_layer + dim * 10  # patches, 2 blocks, head
    assert 0 < int8["peak_activation_bytes"] <= 1.1 * fp32["peak_activation_bytes"]
