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


def _matmul_branch(name: str, weight: np.ndarray, x: str, y: str) -> onnx.GraphProto:
    """A subgraph whose weight lives in its own Constant node and whose input comes from the outer scope."""
    w = numpy_helper.from_array(weight, f"{name}_w")
    nodes = [helper.make_node("Constant", [], [w.name], value=w),
             helper.make_node("MatMul", [x, w.name], [y])]
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)])


def constant_weights(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Weights held the ways exporters in the wild hold them; returns the file and every weight in it.

    x[N,4] -> MatMul(Constant value) -> Add(Constant value_floats) -> Mul(Constant value_float) ->
    Reshape(Constant value_ints: a shape, not a weight) -> If(sum > 0, each branch a MatMul with its own
    Constant weight) -> Loop(2 steps, the body a MatMul with its own Constant weight) -> y[N,3].
    """
    w0 = np.array([[1, 0, 2, 0, 3, 0, 4, 0]] * 4, dtype=np.float32)  # 16 zeros of 32
    b0 = [0.5, 0.0, -0.5, 0.0, 1.0, 0.0, -1.0, 0.0]
    then_w = np.arange(24, dtype=np.float32).reshape(8, 3)  # one zero
    else_w = -np.ones((8, 3), dtype=np.float32)
    loop_w = np.eye(3, dtype=np.float32)  # six zeros
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Constant", [], ["loop_w"], value=numpy_helper.from_array(loop_w, "loop_w")),
         helper.make_node("MatMul", ["v_in", "loop_w"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Constant", [], ["w0"], value=numpy_helper.from_array(w0, "w0")),
        helper.make_node("MatMul", ["x", "w0"], ["h0"]),
        helper.make_node("Constant", [], ["b0"], value_floats=b0),
        helper.make_node("Add", ["h0", "b0"], ["h1"]),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Mul", ["h1", "half"], ["h2"]),
        helper.make_node("Constant", [], ["shape"], value_ints=[-1, 8]),
        helper.make_node("Reshape", ["h2", "shape"], ["h3"]),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value_float=0.0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["branch"],
                         then_branch=_matmul_branch("then", then_w, "h3", "t"),
                         else_branch=_matmul_branch("else", else_w, "h3", "e")),
        helper.make_node("Loop", ["steps", "keep_going"], ["y"], body=body),
    ]
    nodes[-1].input.append("branch")
    inits = [numpy_helper.from_array(np.array(2, dtype=np.int64), "steps"),
             numpy_helper.from_array(np.array(True), "keep_going")]
    g = helper.make_graph(nodes, "constant_weights",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    weights = {"w0": w0, "b0": np.array(b0, dtype=np.float32), "half": np.float32(0.5),
               "zero": np.float32(0.0), "then": then_w, "else": else_w, "loop": loop_w}
    return _save(g, path), weights


def weights_as_input(path: Path) -> Path:
    """A Conv whose weight is a graph input (fed at run time, not stored): its weights cannot be counted."""
    bias = numpy_helper.from_array(np.ones(4, dtype=np.float32), "b")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "fed",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8]),
                           helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 1, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], [bias])
    return _save(g, path)


def digits_npz(path: Path, n: int = 200) -> Path:
    """Real labelled data: the first n UCI 8x8 digits (bundled with scikit-learn), scaled to 0..1."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:n] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    np.savez(path, x=x, y=d.target[:n].astype(np.int64))
    return path


def streaming(path: Path, width: int = 8, named: bool = False) -> Path:
    """A streaming model shaped like silero-vad: audio chunk, recurrent state, int64 sample-rate scalar `sr`.

    input [N, T] and state [2, N, width] (their dimensions unnamed, or `batch`/`sequence` with named=True);
    output = mean(input) * sr, stateN = state + 1. `sr` is rank 0, as a real model's rate switch is.
    """
    batch, seq = ("batch", "sequence") if named else (None, None)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["m", "srf"], ["output"]),
        helper.make_node("Add", ["state", "one"], ["stateN"]),
    ]
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    g = helper.make_graph(nodes, "streaming",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, seq]),
                           helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch, width]),
                           helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 1]),
                           helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, batch, width])], [one])
    return _save(g, path)


def matmul_chain(path: Path, depth: int, size: int = 512, seed: int = 0) -> Path:
    """`depth` MatMuls of a size x size activation by one shared size x size weight: a slow model
    (tens of ms per call at depth 8) with a small file; twice the depth is about twice the time."""
    rng = np.random.default_rng(seed)
    # scaled so the activations neither vanish nor overflow along the chain
    w = numpy_helper.from_array((rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32), "w")
    names = ["x"] + [f"h{i}" for i in range(1, depth)] + ["y"]
    nodes = [helper.make_node("MatMul", [names[i], "w"], [names[i + 1]]) for i in range(depth)]
    g = helper.make_graph(nodes, "matmul_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], [w])
    return _save(g, path)


def mlp_det(path: Path, seed: int = 0) -> Path:
    """The digits classifier's first layers, then a 3x3 determinant (Det, opset 11): an op the OpenVINO
    execution provider does not take, so onnxruntime runs that node on CPU (a provider fallback)."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32) * 0.1, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 9)).astype(np.float32) * 0.1, "w2")
    shape = numpy_helper.from_array(np.array([-1, 3, 3], dtype=np.int64), "shape3")
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["m"]),
        helper.make_node("Reshape", ["m", "shape3"], ["sq"]),
        helper.make_node("Det", ["sq"], ["y"]),
    ]
    g = helper.make_graph(nodes, "mlp_det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])], [w1, w2, shape])
    return _save(g, path)
