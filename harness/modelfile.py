"""What a device must store for an ONNX model, and a quick validity check before any target sees it."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelCheck:
    """A model file as the harness sees it before measuring: usable, or a status and a message."""

    path: Path
    status: str = "ok"
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_files(path: Path, model: Any) -> list[Path]:
    """The model file plus every external-data file it references (a device must store them all)."""
    from export.graphfacts import stored_tensors

    files = {path}
    for tensor in stored_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location":
                files.add(path.parent / entry.value)
    return sorted(files)


def zip_bytes(paths: list[Path]) -> int:
    """Deflated size, the seeds' "deflation" figure: what pruning's zeros and clustering's repeats buy."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                total += len(compressor.compress(block))
    return total + len(compressor.flush())


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
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ModelCheck(path, "invalid_graph", f"{path} is not a valid ONNX graph: {first}; "
                                                 "re-export it or run python -m onnx.checker on it")
    files = stored_files(path, model)
    missing = [f for f in files if not f.exists()]
    if missing:
        return ModelCheck(path, "missing_file", f"{path} refers to external data {missing[0]}, which is missing; "
                                                "copy it next to the model")
    counted = count_params(model, path.parent)  # None (a blank cell) where the file cannot say
    facts = {
        "model_bytes": sum(f.stat().st_size for f in files),
        "model_zip_bytes": zip_bytes(files),
        "params": counted.params,
        "nonzero_params": counted.nonzero,
        "sha256": sha256_file(path),
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }
    return ModelCheck(path, facts=facts)
