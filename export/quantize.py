"""INT8 with onnxruntime: static QDQ per-channel calibrated on real data (``+int8``) or dynamic (``+int8dyn``).

A static build comes in one of export/int8.py's FORMS; which one ships is decided there, from
accuracy measured on the CPU first, then speed. Speed on an x86 machine with AVX-512 VNNI, measured by
``scripts/measure_compression.py`` against FP32 in one process (batch 1, 1 thread): zoo:resnet U8S8
0.29x FP32's latency, S8S8 0.96x; zoo:mixnet U8S8 0.80x, S8S8 4.5x (slower). Dynamic quantization of a
CNN turns convs into ConvInteger and was several times slower than FP32, so the dynamic variant
measures itself against FP32 and says so in the manifest.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.onnx_export import INPUT_NAME, interleaved_latency, save_model
from targets.errors import EdgebenchError

if TYPE_CHECKING:
    from export.int8 import Int8Form

CALIBRATIONS = ("minmax", "entropy", "percentile")
N_CALIBRATION = 256


class _Reader:
    """CalibrationDataReader over real samples, batch 1 (ranges are per-sample activations)."""

    def __init__(self, x: np.ndarray, input_name: str) -> None:
        self._it = iter([{input_name: x[i:i + 1]} for i in range(len(x))])

    def get_next(self):  # noqa: ANN201 - onnxruntime's protocol
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by the calibrators we call
        pass


def _preprocess(src: Path, dst: Path) -> str:
    """quant_pre_process (shape inference + graph optimisation); on failure fall back and say so."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return "ok"
    except Exception as exc:  # e.g. symbolic shape inference gives up on an exotic op
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
            return f"ok without symbolic shape inference ({type(exc).__name__})"
        except Exception as exc2:
            raise EdgebenchError(f"quant_pre_process failed: {type(exc2).__name__}: {exc2}") from exc2


WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def float_nodes(path: Path, keep: tuple[str, ...]) -> list[str]:
    """Names of the nodes ``keep`` asks to leave in float: ``first`` / ``last`` (the first / last layer with
    weights, where quantization error hurts most) or node names; an unknown name is an error."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weighted = [n.name for n in graph.node if n.op_type in WEIGHTED_OPS]
    names = {n.name for n in graph.node}
    out = []
    for k in keep:
        if k in ("first", "last"):
            out += weighted[:1] if k == "first" else weighted[-1:]
        elif k in names:
            out.append(k)
        else:
            raise EdgebenchError(f"--int8-keep-float {k}: no node of that name; give first, last or node names "
                                 f"(e.g. {', '.join(weighted[:3])})")
    return out


def quantize_static_int8(src: Path, dst: Path, calib_x: np.ndarray, *, form: Int8Form, calibration: str = "minmax",
                         per_channel: bool = True, keep_float: tuple[str, ...] = (), shared: Path | None = None) -> dict:
    """Static QDQ quantization of ``src`` into ``dst`` in INT8 ``form``, calibrated on ``calib_x`` (real samples);
    the nodes ``keep_float`` names (see float_nodes) stay in float. Forms of one float model may share a
    ``shared`` folder: the pre-processed graph and the calibration ranges (float min/max, the same for every
    form) are then computed once, which was most of an INT8 build's time."""
    import inspect

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration not in CALIBRATIONS:
        raise EdgebenchError(f"unknown calibration {calibration!r}; use one of {', '.join(CALIBRATIONS)}")
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration]
    x = np.ascontiguousarray(calib_x[:N_CALIBRATION], dtype=np.float32)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(shared or tmp)
        pre = work / "pre.onnx"
        pre_status = (work / "pre_status.txt").read_text() if pre.is_file() else _preprocess(src, pre)
        (work / "pre_status.txt").write_text(pre_status)
        excluded = float_nodes(pre, keep_float)
        cache = {}  # onnxruntime >= 1.25 keeps calibration ranges in a file it can reuse
        if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
            cache = {"calibration_cache_path": str(work / f"ranges-{calibration}.json")}
        try:
            quantize_static(str(pre), str(Path(tmp) / "q.onnx"), _Reader(x, INPUT_NAME),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=form.reduce_range,
                            activation_type=types[form.activation_type], weight_type=types[form.weight_type],
                            calibrate_method=method, nodes_to_exclude=excluded,
                            extra_options={"CalibTensorRangeSymmetric": False} if calibration == "minmax" else None,
                            **cache)
        except Exception as exc:
            raise EdgebenchError(f"static INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
        import onnx

        save_model(onnx.load(str(Path(tmp) / "q.onnx")), dst)
    return {
        "mode": "static", "format": "QDQ", "per_channel": per_channel, "form": form.name,
        "activation_type": form.activation_type, "weight_type": form.weight_type, "reduce_range": form.reduce_range,
        "kept_float": excluded, "calibration": calibration, "n_calibration_samples": int(len(x)),
        "calibration_split": "train", "pre_process": pre_status, "seconds": round(time.perf_counter() - t0, 3),
    }


def quantize_dynamic_int8(src: Path, dst: Path, *, per_channel: bool = True) -> dict:
    """Dynamic quantization (weights int8 offline, activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        pre_status = _preprocess(src, pre)
        try:
            quantize_dynamic(str(pre), str(Path(tmp) / "q.onnx"), per_channel=per_channel, weight_type=QuantType.QInt8)
        except Exception as exc:
            raise EdgebenchError(f"dynamic INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
        import onnx

        save_model(onnx.load(str(Path(tmp) / "q.onnx")), dst)
    return {"mode": "dynamic", "format": "QOperator", "per_channel": per_channel, "activation_type": "uint8 (runtime)",
            "weight_type": "int8", "calibration": None, "n_calibration_samples": 0, "pre_process": pre_status,
            "seconds": round(time.perf_counter() - t0, 3)}


def quick_latency_ratio(candidate: Path, baseline: Path, x1: np.ndarray, blocks: int = 5, per_block: int = 30) -> float:
    """Median latency ratio candidate/baseline at batch 1, from alternating blocks of calls in one process.
    A quick sanity figure for the manifest, not a benchmark."""
    medians, _ = interleaved_latency([baseline, candidate], x1[:1], rounds=blocks, block=per_block, drop=3)
    return medians[1] / medians[0]
