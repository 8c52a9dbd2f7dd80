"""Labelled data for training, fine-tuning, calibration and accuracy.

Default: the UCI 8x8 handwritten digits that scikit-learn bundles (real data, no download), scaled to
[0, 1] and resized to the model's input size. A user file is an ``.npz`` with ``x`` (float32, NxCxHxW)
and ``y`` (int labels, N). Either is split train/val/test with a fixed seed, so every variant is scored
on the same held-out images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from targets.errors import EdgebenchError
from targets.fileio import atomic_output

SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test


@dataclass(frozen=True)
class Dataset:
    """Three fixed splits of (x float32 NxCxHxW, y int64 N) and where they came from."""

    source: str
    num_classes: int
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """sha256 over every array: the data part of the cache / rebuild key."""
        return data_fingerprint(self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)


def data_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over arrays' shapes and bytes (an .npz file's own bytes change with its zip timestamps)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of NxCxHxW images (torch's interpolate: the same op a user would use)."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(x), size=hw, mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)


def _split(x: np.ndarray, y: np.ndarray, source: str) -> Dataset:
    """Stratified-by-shuffle fixed-seed split: each class is cut 60/20/20 so small classes appear in test."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(len(idx) * SPLIT_FRACTIONS[0]))
        n_val = int(round(len(idx) * SPLIT_FRACTIONS[1]))
        for i, chunk in enumerate((idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:])):
            parts[i].append(chunk)
    tr, va, te = (np.sort(np.concatenate(p)) for p in parts)
    if min(len(tr), len(va), len(te)) == 0:
        raise EdgebenchError(f"dataset {source} is too small to split into train/val/test; give at least 10 samples")
    num_classes = int(y.max()) + 1
    return Dataset(source, num_classes, x[tr], y[tr], x[va], y[va], x[te], y[te])


def load_digits_dataset(input_shape: tuple[int, ...]) -> Dataset:
    """The bundled 8x8 digits (1797 images, 10 classes), resized to ``input_shape``'s H, W and C."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    if len(input_shape) != 4:
        raise EdgebenchError(f"the digits dataset needs a 4-D input shape 1,C,H,W; got {input_shape}")
    x = resize(x, (int(input_shape[2]), int(input_shape[3])))
    if input_shape[1] != 1:  # a 3-channel model sees the grey digit in every channel
        x = np.repeat(x, int(input_shape[1]), axis=1)
    return _split(np.ascontiguousarray(x, dtype=np.float32), d.target.astype(np.int64),
                  f"sklearn-digits@{input_shape[2]}x{input_shape[3]}")


def _first_index(mask: np.ndarray) -> str:
    """The first True position of a mask as an index users can paste: 3 or (3, 0, 1, 2)."""
    where = tuple(int(i) for i in np.argwhere(mask)[0])
    return str(where[0]) if len(where) == 1 else str(where)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, checked: numbers only, finite floats, labels `y` whole numbers >= 0, one per row.

    Each problem is an EdgebenchError naming the file, the array and its first bad index: a NaN input or
    a label of -1 would otherwise be measured and scored as if it were data."""
    path = Path(path)
    if not path.is_file():
        raise EdgebenchError(f"data file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise EdgebenchError(f"data file {path} is a single array, not an .npz of named arrays; "
                                 "write it with np.savez(path, x=..., y=...)")
        with loaded as f:
            arrays = {name: f[name] for name in f.files}
    except EdgebenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad file
        raise EdgebenchError(f"cannot read data file {path} as .npz ({type(exc).__name__}: {exc}); "
                             "write it with np.savez(path, x=..., y=...)") from None
    if not arrays:
        raise EdgebenchError(f"data file {path} holds no arrays; write it with np.savez(path, x=..., y=...)")
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise EdgebenchError(f"data file {path}: array {name!r} holds {a.dtype} values; give numbers "
                                 "(float32 inputs, integer labels)")
        if a.ndim and not len(a):
            raise EdgebenchError(f"data file {path}: array {name!r} has no rows; give at least one sample")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise EdgebenchError(f"data file {path}: array {name!r} holds NaN or infinity at index "
                                 f"{_first_index(~np.isfinite(a))}; give finite values")
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1:
            raise EdgebenchError(f"data file {path}: labels y have shape {list(y.shape)}; give one label per "
                                 "sample, shape (N,)")
        if y.dtype.kind == "f" and (y != np.round(y)).any():
            raise EdgebenchError(f"data file {path}: label y[{_first_index(y != np.round(y))}] = "
                                 f"{y[y != np.round(y)][0]} is not a whole number; give integer class labels")
        if (y < 0).any():
            raise EdgebenchError(f"data file {path}: label y[{_first_index(y < 0)}] = {y[y < 0][0]} is negative; "
                                 "give class labels 0, 1, ..., classes-1")
    return arrays


def check_labels_fit(path: Path, arrays: dict[str, np.ndarray], fed: list[str], classes: int | None,
                     model: str) -> None:
    """Labels `y` that fit a model: one per row of each array it is fed, each below its output width."""
    y = arrays.get("y")
    if y is None:
        return
    for name in fed:
        a = arrays[name]
        if a.ndim and len(a) != len(y):
            raise EdgebenchError(f"data file {path}: array {name!r} has {len(a)} rows but y has {len(y)} labels; "
                                 "give one label per row")
    if classes is not None and len(y) and y.max() >= classes:
        raise EdgebenchError(f"data file {path}: label y[{_first_index(y >= classes)}] = {y[y >= classes][0]}, "
                             f"but {model} scores {classes} classes (0-{classes - 1}); fix the labels or the model")


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a data file; every problem is an EdgebenchError saying how to fix the file."""
    arrays = read_arrays(path)
    if "x" not in arrays or "y" not in arrays:
        raise EdgebenchError(f"data file {path} must hold arrays 'x' and 'y'; it has {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 4:
        raise EdgebenchError(f"data file {path}: x must be N x C x H x W (4-D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgebenchError(f"data file {path}: x must be float32 (got {x.dtype}); scale it as the model expects")
    check_labels_fit(path, arrays, ["x"], None, "the model")
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def load_dataset(path: Path | None, input_shape: tuple[int, ...]) -> Dataset:
    """The user's ``.npz`` (checked against ``input_shape``) or, if ``path`` is None, the bundled digits."""
    if path is None:
        return load_digits_dataset(input_shape)
    x, y = read_npz(Path(path))
    if tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise EdgebenchError(
            f"data file {path}: samples are {x.shape[1:]} but the model input is {tuple(input_shape[1:])}; "
            "resize the data or pass a matching --input-shape"
        )
    return _split(x, y, f"npz:{Path(path).name}")


def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write a data file in the CONTRACT format (x float32 NxCxHxW, y int64) that `bench --data` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:  # the temp name ends in .npz, so np.savez keeps it
        np.savez(tmp, x=np.ascontiguousarray(x, dtype=np.float32), y=np.asarray(y, dtype=np.int64))
    return path
