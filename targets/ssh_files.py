"""What a remote target copies for one spec file: the file plus the external-data files an ONNX model names.

A model is cached on the board under ``models/<sha256>/<its own file name>``: a folder per content hash,
not ``<sha256>.onnx``, because an ONNX model with external data finds its ``.onnx.data`` file by the
relative name recorded inside it, so that file must sit beside the model under that name. The hash
covers the model and every data file, so a changed data file is a different cache entry.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from targets import stored

_cache: dict[tuple[str, int, int], Bundle] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Bundle:
    """A file and its companions: `members` are (name relative to the bundle folder, local path)."""

    name: str
    sha256: str
    members: tuple[tuple[str, Path], ...]


def external_data_names(path: Path) -> list[str]:
    """Relative names of the external-data files an ONNX model refers to ([] if none or not ONNX), kept
    to the model's folder: a location that leaves it cannot be mirrored safely; the runner will report it."""
    if path.suffix != ".onnx":
        return []
    try:
        import onnx
    except ImportError:  # the harness normally has onnx; without it only the .onnx file is copied
        return []
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a broken model is the runner's to report, as data
        return []
    return [n for n in stored.external_data_names(model) if stored.safe_name(n)]


def bundle_for(path: Path) -> Bundle:
    """The bundle for one local file, hashed once per (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    members = [(path.name, path)] + [(n, path.parent / n) for n in external_data_names(path)]
    members = [(rel, p) for rel, p in members if p.is_file()]
    if len(members) == 1:
        sha = stored.sha256_file(path)
    else:
        digest = hashlib.sha256()
        for rel, p in members:
            digest.update(f"{rel}\0{stored.sha256_file(p)}\n".encode())
        sha = digest.hexdigest()
    bundle = Bundle(path.name, sha, tuple(members))
    with _cache_lock:
        _cache[key] = bundle
    return bundle
