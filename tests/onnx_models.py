"""Small real ONNX models built with onnx.helper, for tests that must not depend on torch or export/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnxruntime 1.31 reads IR version <= 13, newer onnx writes 14 by default: pin what we write.
IR_VERSION = 10
OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def identity(path: Path, width: int = 4) -> Path:
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])])
    return _save(g, path)


def mlp(path: Path, n_in: int = 64, hidden: int = 256, n_out: int = 10, seed: int = 0,
        batch: int | str = "N") -> Path:
    """Flatten -> Gemm -> Relu -> Gemm: a classifier over 1x8x8 images (the digits' shape)."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((n_in, hidden)).astype(np.float32) * 0.1, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, n_out)).astype(np.float32) * 0.1, "w2")
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])], [w1, w2])
    return _save(g, path)


def two_inputs(path: Path) -> Path:
    """y = a + b with a fixed and a dynamic axis: several inputs."""
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    return _save(g, path)


def token_embedding(path: Path, vocab: int = 100, dim: int = 16) -> Path:
    """Gather over int64 token ids with a symbolic sequence axis (a transformer's first layer)."""
    table = numpy_helper.from_array(np.arange(vocab * dim, dtype=np.float32).reshape(vocab, dim), "table")
    g = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], "embed",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", dim])], [table])
    return _save(g, path)


def digits_npz(path: Path, n: int = 200) -> Path:
    """Real labelled data: the first n UCI 8x8 digits (bundled with scikit-learn), scaled to 0..1."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:n] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    np.savez(path, x=x, y=d.target[:n].astype(np.int64))
    return path
