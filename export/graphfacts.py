"""Facts that hold for any ONNX graph: parameters, non-zero parameters, MACs, peak activations, quantized ops.

One counting rule for every file, built here or found in the wild (``bench`` and ``manifest.json`` both
use it), so a number means the same thing wherever it appears:

- A **weight** is a constant tensor: a graph initializer (sparse ones too) or the value of a
  ``Constant`` node (``value``, ``sparse_value``, ``value_float(s)``), in the main graph and in every
  subgraph (``If`` / ``Loop`` / ``Scan`` bodies): exporters such as paddle2onnx keep all weights in
  ``Constant`` nodes, and a branch's weights live in its subgraph.
- **Float tensors count** (float32/16, bfloat16, double, float8), wherever they are used: a scalar
  constant or BatchNormalization's running statistics are stored values too. Telling a weight from a
  constant by its use would be guesswork; the exceptions are quantization scales: the inputs the ONNX
  spec defines as scales (QuantizeLinear / DequantizeLinear / QLinear* / *Integer), and a weight's scale
  that dynamic quantization multiplies with an activation's run-time scale (DynamicQuantizeLinear).
- **Integer tensors count only as the stored form of a quantized weight**: the data input of
  DequantizeLinear (int8 weights, int32 biases), the weight of QLinearConv / QLinearMatMul /
  ConvInteger / MatMulInteger. int64 shapes, indices and zero points are not parameters
  (``value_int(s)`` constants are shapes). So a quantized weight counts once, as its int8 tensor, and
  an INT8 file has the same ``params`` as the float file it came from.
- **Non-zero** compares a quantized weight with its zero point along the axis the spec gives:
  DequantizeLinear's ``axis`` attribute (default 1, not 0: ONNX Runtime quantizes a MatMul weight
  K x N per column), axis 0 for convolution weights, the last axis for MatMulInteger / QLinearMatMul.
- **None, never a wrong 0**: when a weight cannot be read (external data missing or unreadable), a
  convolution / Gemm / RNN weight arrives as a graph input, or a zero point is not a constant.

The rest of ``graph_stats`` uses the same constants: an output computed from constants only (a
DequantizeLinear of a weight, a transposed weight) is a weight, never an activation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

# Quantized weights: op -> {weight input: (its zero-point input or None, channel axis)}. Axis None means
# "DequantizeLinear's axis attribute"; a zero point of one element is per-tensor whatever the axis.
_QUANTIZED_WEIGHTS: dict[str, dict[int, tuple[int | None, int | None]]] = {
    "DequantizeLinear": {0: (2, None)},
    "QLinearConv": {3: (5, 0), 8: (None, 0)},  # weight (per output channel), int32 bias
    "QLinearMatMul": {3: (5, -1)},  # B is K x N, per column
    "ConvInteger": {1: (3, 0)},
    "MatMulInteger": {1: (3, -1)},
}
# Inputs that are quantization scales / zero points, not weights.
_QUANT_PARAMS = {"QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "QLinearConv": {1, 2, 4, 5, 6, 7},
                 "QLinearMatMul": {1, 2, 4, 5, 6, 7}, "ConvInteger": {2, 3}, "MatMulInteger": {2, 3}}
# Inputs that must hold a weight: one fed by a graph input means the weights are not in the file.
_WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (1,), "ConvInteger": (1,), "QLinearConv": (3,),
                  "LSTM": (1, 2), "GRU": (1, 2), "RNN": (1, 2)}
# Ops a weight passes through unchanged in kind on its way to the op that uses it.
_WEIGHT_PASSING = {"DequantizeLinear", "Identity", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze"}
_MAC_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger",
            "QLinearMatMul", "Einsum"}


class Uncountable(Exception):
    """A figure cannot be read from this graph (the message says why)."""


@dataclass(frozen=True)
class ParamCount:
    """Parameters and non-zero parameters of a graph; None where they cannot be counted (``why`` says why)."""

    params: int | None
    nonzero: int | None
    why: str | None = None


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph under it (If branches, Loop / Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graphs(sub)


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of the graph and of its subgraphs."""
    for g in iter_graphs(graph):
        yield from g.node


def stored_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every TensorProto a file stores as a constant (initializers and Constant values, all subgraphs)."""
    for g in iter_graphs(graph):
        yield from g.initializer
        for node in g.node:
            if node.op_type == "Constant":
                yield from (a.t for a in node.attribute if a.type == AttributeProto.TENSOR)


def _sparse_to_array(sparse: onnx.SparseTensorProto, base_dir: str) -> np.ndarray:
    values = numpy_helper.to_array(sparse.values, base_dir)
    indices = numpy_helper.to_array(sparse.indices, base_dir)
    dense = np.zeros(int(np.prod(sparse.dims)), dtype=values.dtype)
    flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, tuple(sparse.dims))
    dense[flat] = values
    return dense.reshape(tuple(sparse.dims))


def _value(holder: TensorProto | onnx.SparseTensorProto | onnx.NodeProto, base_dir: str) -> np.ndarray | None:
    """The value of an initializer, a sparse initializer or a Constant node (None for strings)."""
    if isinstance(holder, TensorProto):
        return numpy_helper.to_array(holder, base_dir)
    if isinstance(holder, onnx.SparseTensorProto):
        return _sparse_to_array(holder, base_dir)
    for a in holder.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t, base_dir)
        if a.name == "sparse_value":
            return _sparse_to_array(a.sparse_tensor, base_dir)
        if a.name in ("value_float", "value_floats"):
            return np.array(a.f if a.name == "value_float" else list(a.floats), dtype=np.float32)
        if a.name in ("value_int", "value_ints"):
            return np.array(a.i if a.name == "value_int" else list(a.ints), dtype=np.int64)
    return None  # value_string(s): not a number


def constant_arrays(graph: onnx.GraphProto, base_dir: str | Path = "") -> dict[str, np.ndarray]:
    """name -> value of every constant tensor in the graph and its subgraphs.

    External data is read from ``base_dir``. Raises ``Uncountable`` when a tensor cannot be read, or
    when two subgraphs (If branches may) define the same name: counting by name would then be wrong.
    """
    out: dict[str, np.ndarray] = {}
    for g in iter_graphs(graph):
        holders = [*((t.name, t) for t in g.initializer),
                   *((sp.values.name, sp) for sp in g.sparse_initializer),
                   *((n.output[0], n) for n in g.node if n.op_type == "Constant" and n.output)]
        for name, holder in holders:
            if name in out:
                raise Uncountable(f"the constant {name!r} is defined twice (in two subgraphs)")
            try:
                value = _value(holder, str(base_dir))
            except Exception as exc:  # noqa: BLE001 - missing external file, truncated data, unknown dtype
                raise Uncountable(f"the weight {name!r} cannot be read ({type(exc).__name__}: {exc})") \
                    from exc
            if value is not None:
                out[name] = value
    return out


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in iter_nodes(graph):
        for pos, name in enumerate(node.input):
            if name:
                uses.setdefault(name, []).append((node, pos))
    return uses


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _zero_point_like(zp: np.ndarray, data: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """The zero point broadcast against ``data``: per tensor, per channel along ``axis``, or blocked."""
    if zp.size == 1:
        return zp.reshape(())
    axis = axis % data.ndim if data.ndim else 0
    if zp.ndim == 1 and data.ndim >= 1 and zp.size == data.shape[axis]:
        shape = [1] * data.ndim
        shape[axis] = zp.size
        return zp.reshape(shape)
    if zp.ndim == data.ndim and block_size > 0:  # blocked quantization (opset 21): one zero point per block
        return np.repeat(zp, block_size, axis=axis).take(range(data.shape[axis]), axis=axis)
    if zp.ndim == data.ndim:
        return zp
    raise Uncountable(f"a zero point of shape {zp.shape} does not fit a weight of shape {data.shape} "
                      f"on axis {axis}")


def _nonzero(data: np.ndarray, node: onnx.NodeProto, pos: int, consts: dict[str, np.ndarray]) -> int:
    """Elements of a quantized weight that differ from its zero point (the spec's axis, not always 0)."""
    zp_pos, axis = _QUANTIZED_WEIGHTS[node.op_type][pos]
    zp_name = node.input[zp_pos] if zp_pos is not None and len(node.input) > zp_pos else ""
    if not zp_name:
        return int(np.count_nonzero(data))  # no zero point: it is 0
    if zp_name not in consts:
        raise Uncountable(f"the zero point {zp_name!r} of a weight is computed, not stored")
    if axis is None:
        axis = _attr(node, "axis", 1)
    zp = _zero_point_like(consts[zp_name], data, axis, _attr(node, "block_size", 0))
    return int(np.count_nonzero(data != zp))


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f" or "float" in a.dtype.name  # bfloat16 / float8 come as ml_dtypes (kind "V")


def _is_quant_param(node: onnx.NodeProto, pos: int, runtime_scales: set[str]) -> bool:
    """Is input ``pos`` of ``node`` a quantization scale / zero point rather than a weight?"""
    if node.domain == "com.microsoft" and node.op_type.startswith("QLinear"):
        return True  # ONNX Runtime's contrib QLinear ops take floats only as scales
    if node.op_type == "Mul" and any(i in runtime_scales for k, i in enumerate(node.input) if k != pos):
        return True  # dynamic quantization: a weight's scale times the activation's run-time scale
    return pos in _QUANT_PARAMS.get(node.op_type, ())


def _quantized_use(uses: list[tuple[onnx.NodeProto, int]]) -> tuple[onnx.NodeProto, int] | None:
    return next(((n, p) for n, p in uses if p in _QUANTIZED_WEIGHTS.get(n.op_type, {})), None)


def _source(name: str, producers: dict[str, onnx.NodeProto]) -> str:
    """Follow a weight back through DequantizeLinear / Transpose / ... to where it comes from."""
    while name in producers and producers[name].op_type in _WEIGHT_PASSING and producers[name].input:
        name = producers[name].input[0]
    return name


def _weights_from_inputs(graph: onnx.GraphProto, consts: dict[str, np.ndarray]) -> str | None:
    """The name of a graph input that feeds a weight position (weights fed at run time), if any."""
    inputs = {i.name for i in graph.input} - set(consts)
    producers = {o: n for n in iter_nodes(graph) for o in n.output}
    for node in iter_nodes(graph):
        for pos in _WEIGHT_INPUTS.get(node.op_type, ()):
            if len(node.input) > pos and _source(node.input[pos], producers) in inputs:
                return _source(node.input[pos], producers)
    return None


def count_params(model: onnx.ModelProto, base_dir: str | Path = "",
                 consts: dict[str, np.ndarray] | None = None) -> ParamCount:
    """Parameters and non-zero parameters by the rules in this module's docstring (None where uncountable).

    External data is read from ``base_dir``; ``consts`` passes constants already read by ``constant_arrays``.
    """
    graph = model.graph
    try:
        consts = constant_arrays(graph, base_dir) if consts is None else consts
    except Uncountable as exc:
        return ParamCount(None, None, str(exc))
    fed = _weights_from_inputs(graph, consts)
    if fed is not None:
        return ParamCount(None, None, f"weights arrive as the graph input {fed!r}, not stored in the file")
    uses = _consumers(graph)
    runtime_scales = {n.output[1] for n in iter_nodes(graph)
                      if n.op_type == "DynamicQuantizeLinear" and len(n.output) > 1}
    params = 0
    nonzero: int | None = 0
    why = None
    for name, data in consts.items():
        used = uses.get(name, [])
        quantized = _quantized_use(used)
        if quantized is None:
            if not _is_float(data) or (used and all(_is_quant_param(n, p, runtime_scales) for n, p in used)):
                continue
        params += int(data.size)
        if nonzero is None:
            continue
        try:
            nonzero += _nonzero(data, *quantized, consts) if quantized else int(np.count_nonzero(data))
        except Uncountable as exc:
            nonzero, why = None, str(exc)
    return ParamCount(params, nonzero, why)


def _stored(graph: onnx.GraphProto) -> dict[str, TensorProto]:
    """The constants of one graph (not its subgraphs) by name, as stored: shape and type, no data read."""
    def dense(sp: onnx.SparseTensorProto) -> TensorProto:
        return TensorProto(dims=sp.dims, data_type=sp.values.data_type)

    out = {t.name: t for t in graph.initializer}
    out.update((sp.values.name, dense(sp)) for sp in graph.sparse_initializer)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            attr = {a.name: a for a in node.attribute}
            if "value" in attr:
                out[node.output[0]] = attr["value"].t
            elif "sparse_value" in attr:
                out[node.output[0]] = dense(attr["sparse_value"].sparse_tensor)
            else:  # value_float(s) / value_int(s): shape inference gives their shapes
                out[node.output[0]] = TensorProto()
    return out


def constant_outputs(graph: onnx.GraphProto) -> set[str]:
    """Names whose value is fixed by the file: constants and outputs of nodes fed by constants only.

    A DequantizeLinear of an int8 weight or a transposed weight is a weight, not an activation. Nodes
    with subgraphs are never folded (a branch may read activations from the outer scope).
    """
    fixed = set(_stored(graph))
    for node in graph.node:  # topologically sorted by the ONNX spec
        inputs = [i for i in node.input if i]
        has_subgraph = any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)
        if inputs and not has_subgraph and all(i in fixed for i in inputs):
            fixed.update(o for o in node.output if o)
    return fixed


def quantized_ops(graph: onnx.GraphProto) -> list[str]:
    """Op types that quantize, dequantize or compute on integers, in the graph and its subgraphs."""
    def quantized(node: onnx.NodeProto) -> bool:
        op = node.op_type
        return ("quant" in op.lower() or "integer" in op.lower() or op.startswith("QLinear")
                or (node.domain == "com.microsoft" and op.startswith("Q")))
    return sorted({n.op_type for n in iter_nodes(graph) if quantized(n)})


def _graph_names(node: onnx.NodeProto) -> set[str]:
    """Names a node reads, counting those its subgraphs read from the outer scope."""
    names = {i for i in node.input if i}
    for attr in node.attribute:
        subs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in subs:
            names.update(i for n in iter_nodes(sub) for i in n.input if i)
    return names


class _Shapes:
    """Static shapes and element types known after shape inference (batch set to 1), plus the constants'."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.dims: dict[str, tuple[int, ...]] = {}
        self.itemsize: dict[str, int] = {}
        for vi in (*graph.input, *graph.value_info, *graph.output):
            t = vi.type.tensor_type
            if t.elem_type and t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self._add(vi.name, [d.dim_value for d in t.shape.dim], t.elem_type)
        for name, tensor in _stored(graph).items():
            if tensor.data_type:
                self._add(name, tensor.dims, tensor.data_type)

    def _add(self, name: str, dims: list[int], elem_type: int) -> None:
        self.dims[name] = tuple(dims)
        self.itemsize[name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize

    def __call__(self, name: str) -> tuple[int, ...]:
        if name not in self.dims:
            raise Uncountable(f"the shape of {name!r} is not static")
        return self.dims[name]

    def nbytes(self, name: str) -> int:
        return int(np.prod(self(name))) * self.itemsize[name]


def _einsum_macs(node: onnx.NodeProto, shape: _Shapes) -> int:
    """One multiply-accumulate per point of the index space (some exports write attention as Einsum)."""
    equation = next(a.s.decode() for a in node.attribute if a.name == "equation").replace(" ", "")
    sizes: dict[str, int] = {}
    for term, name in zip(equation.split("->")[0].split(","), node.input):
        dims = shape(name)
        if "..." in term:  # the ellipsis stands for the leading dims no letter names
            head, tail = term.split("...")
            term = head + "".join(chr(0x100 + i) for i in range(len(dims) - len(head) - len(tail))) + tail
        for letter, size in zip(term, dims):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return int(np.prod(list(sizes.values())))


def _macs(node: onnx.NodeProto, shape: _Shapes) -> int:
    """Multiply-accumulates of one Conv / ConvTranspose / Gemm / MatMul (or integer form) at static shapes."""
    op, out = node.op_type, int(np.prod(shape(node.output[0])))
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        return out * int(np.prod(shape(node.input[3 if op == "QLinearConv" else 1])[1:]))
    if op == "ConvTranspose":  # every input element meets Cout/group x kernel weights
        return int(np.prod(shape(node.input[0]))) * int(np.prod(shape(node.input[1])[1:]))
    if op == "Einsum":
        return _einsum_macs(node, shape)
    a = shape(node.input[0])
    if op == "Gemm":
        return out * (a[0] if _attr(node, "transA", 0) else a[1])
    return out * a[-1]  # MatMul and its integer forms: K is A's last axis, whether B is a weight or not


def _peak_activation_bytes(graph: onnx.GraphProto, shape: _Shapes, fixed: set[str]) -> int:
    """Largest total of live activations over the sorted nodes: a static arena without in-place reuse."""
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in _graph_names(node):
            last_use[name] = i
    keep_to_end = {o.name for o in graph.output}
    live = {i.name: shape.nbytes(i.name) for i in graph.input if i.name not in fixed}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        for o in node.output:
            if o and o not in fixed:
                live[o] = shape.nbytes(o)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in keep_to_end:
                del live[name]
    return peak


def _or_none(compute, *args):  # noqa: ANN001, ANN202 - a figure, or None when the graph cannot give it
    try:
        return compute(*args)
    except Uncountable:
        return None


def _infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Static shapes where the inputs' are static: onnx's inference, then ONNX Runtime's symbolic one.

    onnx's own loses the batch through Shape -> Expand (a ViT's class token), which left every later
    tensor of a ViT without a shape; the symbolic one follows it, but costs seconds on large graphs, so
    it runs only when onnx's left a gap that static inputs can fill.
    """
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # noqa: BLE001 - without inferred shapes the shape-based figures become None
        pass
    known = _Shapes(proto.graph).dims
    if all(i.name in known for i in proto.graph.input) and any(
            o not in known for n in proto.graph.node for o in n.output if o):
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            return SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
        except Exception:  # noqa: BLE001 - it gives up on some exotic ops: keep onnx's shapes
            pass
    return proto


def graph_stats(path: Path) -> dict:
    """params, non-zero params, MACs, distinct values per conv / linear, peak activations, quantized ops.

    - params / nonzero_params: ``count_params`` (rules in the module docstring); None if uncountable.
    - macs: Conv / ConvTranspose / Gemm / MatMul and their integer forms at batch 1, from inferred shapes
      (so a MatMul whose weight comes through DequantizeLinear, or between two activations, counts);
      None if one of them has a non-static shape or sits in a subgraph.
    - peak_activation_bytes: walk the (topologically sorted) nodes, keep each activation alive from its
      producer to its last consumer, take the largest live total. Weights are excluded: constants and
      everything computed from constants only (dequantized weights), so FP32 and INT8 estimates of one
      model compare. A QDQ graph is walked as written (its float tensors between Q/DQ pairs count), so
      the INT8 figure is an upper bound of what a fused runtime holds. None if a shape is not static.
    """
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    for inp in proto.graph.input:  # batch 1 for the static estimates
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    proto = _infer_shapes(proto)
    g = proto.graph
    try:
        consts = constant_arrays(g, path.parent)
    except Uncountable:
        consts = {}  # count_params reads again and says why in its None
    counted = count_params(proto, path.parent, consts or None)
    shape = _Shapes(g)
    producers = {o: n for n in g.node for o in n.output}

    def macs() -> int:
        if any(n.op_type in _MAC_OPS for sub in list(iter_graphs(g))[1:] for n in sub.node):
            raise Uncountable("a Conv / Gemm / MatMul sits in a subgraph")
        return sum(_macs(n, shape) for n in g.node if n.op_type in _MAC_OPS)

    unique: dict[str, int] = {}
    for n in g.node:
        if n.op_type in _MAC_OPS and len(n.input) > 1:
            wname = _source(n.input[3 if n.op_type in ("QLinearConv", "QLinearMatMul") else 1], producers)
            if wname in consts:
                unique[n.name or wname] = int(np.unique(consts[wname]).size)
    return {
        "params": counted.params, "nonzero_params": counted.nonzero, "macs": _or_none(macs),
        "macs_source": "onnx-graph", "unique_weight_values": unique,
        "max_unique_weight_values": max(unique.values(), default=0),
        "peak_activation_bytes": _or_none(_peak_activation_bytes, g, shape, constant_outputs(g)),
        "opset": max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "quantized_ops": quantized_ops(g),
    }
