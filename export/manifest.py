"""What an artifact is and what it cost: ONNX graph statistics, ``manifest.json`` and ``artifacts.csv``.

Every figure here is read from the ONNX file itself (sizes, parameters, MACs, distinct values, the
activation-memory estimate), so a manifest describes the bytes a device will load, not the torch model.

Format history: schema_version 1 - first version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from export.onnx_export import external_data_files

SCHEMA_VERSION = 1

# artifacts.csv columns, defined once here (a second hand-typed list would drift)
CSV_COLUMNS = (
    "schema_version", "variant", "variant_dir", "model", "input_shape", "status", "error", "model_sha256",
    "params", "nonzero_params", "macs", "model_bytes", "model_zip_bytes", "opset", "exporter",
    "parity_max_abs_diff", "quant_mode", "quant_activation_type", "quant_weight_type", "quant_calibration",
    "max_unique_weight_values", "weight_sparsity", "peak_activation_bytes", "accuracy", "precision_macro",
    "recall_macro", "f1_macro", "gmean", "n_test_samples", "build_seconds", "reused",
    "int8_form", "int8_chosen_on", "int8_warning", "build_cpu_model", "build_cpu_features",
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sizes(path: Path) -> tuple[int, int]:
    """(bytes, zip-deflated bytes) of the model file plus any external data it references."""
    files = [Path(path), *external_data_files(path)]
    raw = sum(f.stat().st_size for f in files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for f in files:
            z.write(f, f.name)
    return raw, len(buf.getvalue())


def _weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in graph.initializer}


def _resolve_weight(name: str, inits: dict[str, np.ndarray], producers: dict[str, onnx.NodeProto]) -> str | None:
    """Follow a DequantizeLinear back to its stored (int8) initializer."""
    if name in inits:
        return name
    node = producers.get(name)
    if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in inits:
        return node.input[0]
    return None


def graph_stats(path: Path) -> dict:
    """params, non-zero params, MACs, distinct weight values per conv/linear, peak activation bytes.

    - params: elements of all float / int8 initializers (int64 shape constants excluded); for quantized
      weights a zero is the zero point.
    - macs: from the ONNX graph with inferred shapes at batch 1: Conv (incl. ConvInteger / QLinearConv),
      Gemm and MatMul.
    - peak_activation_bytes: walk the (topologically sorted) nodes, keep each tensor alive from its
      producer to its last consumer, take the largest live total (a static "tensor arena" estimate
      without in-place reuse; weights excluded).
    """
    proto = onnx.load(str(path))
    for inp in proto.graph.input:  # batch 1 for the static estimates
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:
        pass
    g = proto.graph
    inits = _weights(g)
    producers = {o: n for n in g.node for o in n.output}
    zero_points: dict[str, np.ndarray] = {}
    for n in g.node:
        if n.op_type == "DequantizeLinear" and len(n.input) > 2 and n.input[0] in inits and n.input[2] in inits:
            zero_points[n.input[0]] = inits[n.input[2]]
    params = nonzero = 0
    for name, a in inits.items():
        if a.dtype == np.int64 or a.dtype == np.int32:
            continue
        params += a.size
        zp = zero_points.get(name)
        if zp is not None:
            axis_shape = [1] * a.ndim
            if zp.size > 1:
                axis_shape[0] = zp.size  # per-channel along the output axis
            nonzero += int((a != zp.reshape(axis_shape)).sum())
        else:
            nonzero += int(np.count_nonzero(a))

    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    for vi in (*g.input, *g.value_info, *g.output):
        t = vi.type.tensor_type
        if all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in t.shape.dim)
            dtypes[vi.name] = t.elem_type

    macs = 0
    unique: dict[str, int] = {}
    for n in g.node:
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv", "Gemm", "MatMul", "MatMulInteger"):
            w_in = n.input[3] if n.op_type == "QLinearConv" else n.input[1]
            out = shapes.get(n.output[0])
            wname = _resolve_weight(w_in, inits, producers)
            w = inits.get(wname) if wname else None
            if w is not None and out is not None:
                if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
                    macs += int(np.prod(out)) * int(np.prod(w.shape[1:]))
                elif n.op_type == "Gemm":
                    trans_b = any(a.name == "transB" and a.i for a in n.attribute)
                    macs += int(np.prod(out)) * int(w.shape[1] if trans_b else w.shape[0])
                else:  # MatMul(x, W): W is K x N
                    macs += int(np.prod(out)) * int(w.shape[-2] if w.ndim >= 2 else 1)
            if w is not None:
                unique[n.name or wname] = int(np.unique(w).size)

    last_use: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for name in n.input:
            last_use[name] = i
    keep_to_end = {o.name for o in g.output}

    def nbytes(name: str) -> int:
        s = shapes.get(name)
        if s is None:
            return 0
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dtypes[name])).itemsize
        return int(np.prod(s)) * itemsize

    live = {i.name: nbytes(i.name) for i in g.input if i.name not in inits}
    peak = sum(live.values())
    for i, n in enumerate(g.node):
        for o in n.output:
            if o and o not in inits:
                live[o] = nbytes(o)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in keep_to_end:
                del live[name]
    return {
        "params": int(params), "nonzero_params": int(nonzero), "macs": int(macs), "macs_source": "onnx-graph",
        "unique_weight_values": unique, "max_unique_weight_values": max(unique.values(), default=0),
        "peak_activation_bytes": int(peak), "opset": max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "quantized_ops": sorted({n.op_type for n in g.node if "Quant" in n.op_type or "Integer" in n.op_type}),
    }


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default), encoding="utf-8")
    os.replace(tmp, path)


def _json_default(o: object) -> object:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version", 0) > SCHEMA_VERSION:
        return None  # a newer format is rebuilt rather than half-understood
    return data


def csv_row(manifest: dict) -> dict:
    """The scalar fields of a manifest as one artifacts.csv row (empty string = not measured)."""
    q = manifest.get("quantization") or {}
    flat = {**manifest, "quant_mode": q.get("mode"), "quant_activation_type": q.get("activation_type"),
            "quant_weight_type": q.get("weight_type"), "quant_calibration": q.get("calibration")}
    if isinstance(flat.get("input_shape"), (list, tuple)):
        flat["input_shape"] = "x".join(str(s) for s in flat["input_shape"])
    row = {}
    for col in CSV_COLUMNS:
        v = flat.get(col)
        if v is None:
            row[col] = ""
        elif isinstance(v, bool):
            row[col] = int(v)
        elif isinstance(v, float):
            row[col] = repr(round(v, 9))
        else:
            row[col] = v
    return row


def write_artifacts_csv(path: Path, manifests: list[dict]) -> None:
    """Rewrite ``artifacts.csv`` atomically: UTF-8, comma, header, one row per variant, no index."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        w.writeheader()
        for m in manifests:
            w.writerow(csv_row(m))
    os.replace(tmp, path)


def read_artifacts_csv(path: Path) -> list[dict]:
    """Read ``artifacts.csv`` back (numbers as numbers, empty cells as None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out: dict = {}
            for k, v in r.items():
                if v == "":
                    out[k] = None
                else:
                    try:
                        out[k] = int(v)
                    except ValueError:
                        try:
                            out[k] = float(v)
                        except ValueError:
                            out[k] = v
            rows.append(out)
    return rows
