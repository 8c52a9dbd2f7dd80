"""What a device stores for a model: the ONNX file and the external-data files it names; their sha256,
bytes and zip-deflated bytes.

One definition for `bench`, `compress` (manifest.json, artifacts.csv) and the SSH model cache, so a
figure means the same wherever it appears: the same model given as a file or as an artifact folder
has the same `model_bytes`, `model_zip_bytes` and `artifact_sha256`. It lives in targets/, the lowest
layer that needs it (a remote target copies the external-data files beside the model); export/ and
harness/ import it from here.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of one file's bytes (a model's identity, a .npy input's identity)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stored_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph stores: initializers (sparse ones too), tensor attributes, all subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            if attr.HasField("g"):
                yield from _stored_tensors(attr.g)
            for sub in attr.graphs:
                yield from _stored_tensors(sub)


def external_data_names(model: Any) -> list[str]:
    """Relative names of the external-data files a loaded ModelProto refers to (sorted, each once)."""
    import onnx

    names = {entry.value for t in _stored_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL
             for entry in t.external_data if entry.key == "location"}
    return sorted(names)


def safe_name(name: str) -> bool:
    """A location that stays in the model's folder (an absolute or `..` path cannot be mirrored on a board)."""
    parts = PurePosixPath(name)
    return bool(name) and ".." not in parts.parts and not parts.is_absolute()


def stored_files(path: Path, model: Any | None = None) -> list[Path]:
    """The model file plus every external-data file it names (what a device must store), model first.

    `model` is the ModelProto when the caller has loaded it already (without its external data).
    """
    import onnx

    path = Path(path)
    if model is None:
        model = onnx.load(str(path), load_external_data=False)
    return [path] + [path.parent / name for name in external_data_names(model)]


def stored_bytes(files: Sequence[Path]) -> int:
    return sum(Path(f).stat().st_size for f in files)


def zip_deflated_bytes(files: Sequence[Path]) -> int:
    """The files' bytes deflated at level 9 as one stream: what pruning's zeros and clustering's repeats buy.

    A raw deflate stream, not a .zip archive: an archive adds headers that carry each file's name, so
    the same model as `a.onnx` and as an artifact's `model.onnx` would differ (by ~100 bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    total = 0
    for p in files:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                total += len(compressor.compress(block))
    return total + len(compressor.flush())


def size_facts(path: Path, model: Any | None = None) -> dict[str, Any]:
    """`model_bytes`, `model_zip_bytes` (model and external data) and `sha256` (the model file) of an ONNX file.

    Raises FileNotFoundError naming the first external-data file that is missing."""
    files = stored_files(path, model)
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(2, "no such file", str(f))
    return {"model_bytes": stored_bytes(files), "model_zip_bytes": zip_deflated_bytes(files),
            "sha256": sha256_file(Path(path))}
