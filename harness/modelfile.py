"""A model file checked before any target sees it, and its facts: what a device stores (targets/stored.py),
parameters (export/graphfacts.py), opset."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.stored import size_facts


@dataclass(frozen=True)
class ModelCheck:
    """A model file as the harness sees it before measuring: usable, or a status and a message."""

    path: Path
    status: str = "ok"
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # the graph inputs a caller feeds (initializers excluded)
    classes: int | None = None  # the first output's width when static: how many classes labels may name

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_model(path: Path) -> ModelCheck:
    """Load and check an ONNX file; measure its stored size, parameters and non-zero parameters."""
    import onnx

    from export.graphfacts import count_params

    path = Path(path)
    if not path.exists():
        return ModelCheck(path, "missing_file", f"{path}: no such file; check the path")
    if path.is_dir():
        return ModelCheck(path, "missing_file", f"{path} is a folder without model.onnx; give an ONNX file "
                                                "or an artifact folder from `edgebench compress`")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError, or ValueError
        return ModelCheck(path, "bad_model", f"{path} is not an ONNX file ({type(exc).__name__}); "
                                             "export the model with torch.onnx.export or check the path")
    if not model.graph.node and not model.graph.output:
        return ModelCheck(path, "bad_model", f"{path} holds no ONNX graph; export the model again")
    try:
        sizes = size_facts(path, model)
    except FileNotFoundError as exc:
        return ModelCheck(path, "missing_file", f"{path} refers to external data {exc.filename}, which is missing; "
                                                "copy it next to the model")
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ModelCheck(path, "invalid_graph", f"{path} is not a valid ONNX graph: {first}; "
                                                 "re-export it or run python -m onnx.checker on it")
    counted = count_params(model, path.parent)  # None (a blank cell) where the file cannot say
    facts = {
        **sizes,
        "params": counted.params,
        "nonzero_params": counted.nonzero,
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }
    return ModelCheck(path, facts=facts, inputs=fed_inputs(model.graph), classes=output_width(model.graph))


def fed_inputs(graph: Any) -> tuple[str, ...]:
    """Names of the inputs a caller must feed (old exporters list initializers among the inputs too)."""
    weights = {t.name for t in graph.initializer}
    return tuple(i.name for i in graph.input if i.name not in weights)


def output_width(graph: Any) -> int | None:
    """Scores per sample of the first output (the runner's argmax runs over them), when its sizes are fixed."""
    if not graph.output:
        return None
    dims = graph.output[0].type.tensor_type.shape.dim[1:]
    if not dims or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return None
    return math.prod(d.dim_value for d in dims)
