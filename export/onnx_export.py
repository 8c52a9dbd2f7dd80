"""PyTorch -> ONNX: export, check, simplify, and prove the file computes what the model computes.

The legacy TorchScript exporter is the default because it is ~10x faster to export here; the dynamo
exporter is an option (it writes weights to an external ``.onnx.data`` file, which we fold back into
the model file when it fits under protobuf's 2 GB limit so one file is one artifact).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from targets.errors import EdgebenchError
from targets.fileio import atomic_output, atomic_write_text
from targets.stored import stored_files

OPSET = 17
EXPORTERS = ("legacy", "dynamo")
# "auto": the legacy exporter (~10x faster here), then dynamo when legacy cannot export an op or its file
# computes something else than the model (checked on real inputs)
EXPORTER_CHOICES = ("auto", *EXPORTERS)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
_TWO_GB = 2 * 1024**3 - 1


def _export_legacy(model: nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation banner is not the user's problem
        torch.onnx.export(model, example, buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


DYNAMO_MIN_OPSET = 18  # torch 2.13's dynamo exporter writes opset 18 and fails converting down to 17


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int, tmp: Path) -> onnx.ModelProto:
    try:
        import onnxscript  # noqa: F401 - the dynamo exporter's own dependency, not torch's
    except ImportError:
        raise EdgebenchError("the dynamo exporter needs onnxscript: pip install onnxscript "
                             "(pip install 'edgebench[dynamo]')") from None
    batch = torch.export.Dim("batch", min=1, max=4096)
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "torchvision is not installed" x4, on every export
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # its progress lines and banners are not the user's problem
            prog = torch.onnx.export(model, (example,), dynamo=True, opset_version=max(opset, DYNAMO_MIN_OPSET),
                                     input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
                                     dynamic_shapes={_first_arg(model): {0: batch}})
    finally:
        logger.setLevel(level)
    prog.save(str(tmp))
    return onnx.load(str(tmp), load_external_data=True)


def _first_arg(model: nn.Module) -> str:
    import inspect

    params = list(inspect.signature(model.forward).parameters)
    return params[0] if params else "x"


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path, *, exporter: str = "legacy",
                opset: int = OPSET, simplify: bool = True) -> dict:
    """Export ``model`` (eval mode) to ``path`` with a dynamic batch axis, check it, simplify it.

    Returns a record: exporter, opset, seconds per stage, whether onnxsim changed the graph.
    """
    if exporter not in EXPORTERS:
        raise EdgebenchError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros(input_shape)
    record: dict = {"exporter": exporter, "opset": opset}
    t0 = time.perf_counter()
    try:
        if exporter == "legacy":
            proto = _export_legacy(model, example, opset)
        else:
            proto = _export_dynamo(model, example, opset, path.with_name("dynamo_tmp.onnx"))
    except EdgebenchError:
        raise
    except Exception as exc:
        raise EdgebenchError(f"torch.onnx.export ({exporter}) failed: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc
    finally:
        for leftover in path.parent.glob("dynamo_tmp.onnx*"):
            leftover.unlink()
    record["export_seconds"] = round(time.perf_counter() - t0, 3)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise EdgebenchError(f"exported ONNX model fails onnx.checker: {exc}") from exc
    record["onnxsim"] = None
    if simplify:
        t0 = time.perf_counter()
        try:
            import onnxsim

            simplified, ok = onnxsim.simplify(proto)
            if ok:
                onnx.checker.check_model(simplified)
                proto = simplified
            record["onnxsim"] = "ok" if ok else "check failed; kept unsimplified graph"
        except Exception as exc:  # onnxsim is an optimisation: a failure is recorded, not fatal
            record["onnxsim"] = f"failed ({type(exc).__name__}); kept unsimplified graph"
        record["simplify_seconds"] = round(time.perf_counter() - t0, 3)
    record["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    save_model(proto, path)
    record["external_data"] = len(stored_files(path)) > 1
    return record


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of an error, without terminal colour codes (dynamo's messages carry them)."""
    import re

    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def export_checked(model: nn.Module, input_shape: tuple[int, ...], path: Path, x: np.ndarray, *,
                   exporter: str = "auto") -> dict:
    """Export ``model`` and prove the file computes what the model computes on real inputs ``x``.

    ``auto`` tries the legacy exporter, then dynamo when legacy fails or its file disagrees with PyTorch
    (a custom op it cannot convert, or a value it froze into a constant). Returns export_onnx's record
    plus ``parity_max_abs_diff`` and, after a fallback, ``fallback_from`` with why the first one failed.
    """
    if exporter not in EXPORTER_CHOICES:
        raise EdgebenchError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTER_CHOICES)}")
    order = EXPORTERS if exporter == "auto" else (exporter,)
    failures: list[dict] = []
    for name in order:
        try:
            record = export_onnx(model, input_shape, path, exporter=name)
            record["parity_max_abs_diff"] = parity_check(path, model, x)
        except EdgebenchError as exc:
            Path(path).unlink(missing_ok=True)
            failures.append({"exporter": name, "error": str(exc)})
            continue
        if failures:
            record["fallback_from"] = failures
        return record
    if exporter == "auto":
        raise EdgebenchError("the model cannot be exported to ONNX: " + "; ".join(f["error"] for f in failures))
    other = "dynamo" if exporter == "legacy" else "legacy"
    raise EdgebenchError(f"{failures[0]['error']}. Try --exporter {other} (or auto)")


def save_model(proto: onnx.ModelProto, path: Path) -> None:
    """Weights inside the file when they fit protobuf's 2 GB limit, else one external data file beside it."""
    path = Path(path)
    with atomic_output(path) as tmp:
        if proto.ByteSize() < _TWO_GB:
            onnx.save_model(proto, str(tmp))
        else:
            onnx.save_model(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + ".data")


NAMES_FILE = "names.json"


def compact_names(path: Path) -> dict:
    """Rename the graph's nodes and inner tensors to short ids (``n12``, ``t34``) and keep the old names in
    ``names.json`` beside the model; the graph's input and output names stay as they are.

    ONNX runs on names as labels only, but a quantized graph repeats them: every QDQ pair adds
    ``<tensor>_QuantizeLinear_Output``, ``<tensor>_scale``, ... so names were 13% of the INT8 file of
    zoo:mixnet (77k characters for 490 kB of tensor data). Like ``strip`` on a binary, the shipped file
    drops them and the map keeps them for whoever reads a profile or an error. Applied to every variant,
    so size ratios compare like with like. Graphs with subgraphs or sparse initializers are left as they are.
    """
    path = Path(path)
    proto = onnx.load(str(path), load_external_data=True)
    g = proto.graph
    before = path.stat().st_size
    if g.sparse_initializer or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                   for n in g.node for a in n.attribute):
        return {"compacted": False, "reason": "the graph has subgraphs or sparse initializers", "bytes_before": before}
    keep = {v.name for v in (*g.input, *g.output)} | {""}
    tensors: dict[str, str] = {}
    ids = (f"t{i}" for i in itertools.count())

    def short(name: str) -> str:
        if name in keep:
            return name
        if name not in tensors:
            tensors[name] = next(i for i in ids if i not in keep)  # a graph input may already be called t0
        return tensors[name]

    for t in g.initializer:
        t.name = short(t.name)
    nodes: dict[str, str] = {}
    for i, node in enumerate(g.node):
        node.input[:] = [short(s) for s in node.input]
        node.output[:] = [short(s) for s in node.output]
        nodes[f"n{i}"] = node.name
        node.name = f"n{i}"
    for vi in g.value_info:
        vi.name = short(vi.name)
    save_model(proto, path)
    onnx.checker.check_model(str(path))  # a name the rename missed leaves a dangling input (by path: > 2 GB ok)
    names = {"tensors": {v: k for k, v in tensors.items()}, "nodes": nodes}
    atomic_write_text(path.with_name(NAMES_FILE), json.dumps(names, indent=0) + "\n")
    return {"compacted": True, "names_file": NAMES_FILE, "bytes_before": before, "bytes_after": path.stat().st_size}


def ort_session(path: Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    """A CPU InferenceSession on the file (the same provider the runner uses)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def interleaved_latency(paths: list[Path], x: np.ndarray, *, rounds: int = 15, block: int = 40, drop: int = 5,
                        threads: int = 1) -> tuple[list[float], list[list[float]]]:
    """Time the models in one process, alternating blocks of ``block`` calls per round (the pattern
    DESIGN.md measured as tight and unbiased); the first ``drop`` calls of a block refill caches the other
    models evicted and are not kept. Returns each model's median seconds over its kept calls, and per
    round each model's median divided by the first model's. A quick figure, not a benchmark."""
    sessions = [ort_session(p, threads) for p in paths]
    feed = {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
    times: list[list[float]] = [[] for _ in paths]
    ratios: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        medians = []
        for sess, kept in zip(sessions, times):
            this_round = []
            for i in range(block):
                t0 = time.perf_counter()
                sess.run(None, feed)
                if i >= drop:
                    this_round.append(time.perf_counter() - t0)
            kept += this_round
            medians.append(float(np.median(this_round)))
        for r, m in zip(ratios, medians):
            r.append(m / medians[0])
    return [float(np.median(t)) for t in times], ratios


def parity_check(path: Path, model: nn.Module, x: np.ndarray, *, atol: float = 1e-3, rtol: float = 1e-3) -> float:
    """Max |ONNX Runtime - PyTorch| on real inputs ``x``; beyond ``atol + rtol*max|y|`` it is an error."""
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    if got.shape != want.shape:
        raise EdgebenchError(f"ONNX output shape {got.shape} differs from PyTorch {want.shape}: the export is broken")
    diff = float(np.max(np.abs(got - want)))
    tol = atol + rtol * float(np.max(np.abs(want)))
    if not np.isfinite(diff) or diff > tol:
        raise EdgebenchError(
            f"ONNX Runtime output differs from PyTorch by {diff:.3g} (tolerance {tol:.3g}) on real inputs: "
            "the export is wrong (a value computed outside torch, e.g. in numpy, is frozen into the file)")
    return diff
