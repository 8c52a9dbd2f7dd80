"""What an artifact is and what it cost: ONNX graph statistics, ``manifest.json`` and ``artifacts.csv``.

Every figure here is read from the ONNX file itself (sizes from ``targets.stored``; parameters, MACs, distinct values and the
activation-memory estimate from ``export.graphfacts``), so a manifest describes the bytes a device will
load, not the torch model.

Format history: schema_version 1 - first version.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from targets.fileio import atomic_write_text, csv_cell

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


def write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False, default=_json_default))


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
        row[col] = repr(round(v, 9)) if isinstance(v, float) and v == v else csv_cell(v)
    return row


def write_artifacts_csv(path: Path, manifests: list[dict]) -> None:
    """Rewrite ``artifacts.csv`` atomically: UTF-8, comma, header, one row per variant, no index."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for m in manifests:
        w.writerow(csv_row(m))
    atomic_write_text(Path(path), buf.getvalue())


def read_artifacts_csv(path: Path) -> list[dict]:
    """Read ``artifacts.csv`` back (numbers as numbers, true/false as booleans, empty cells as None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out: dict = {}
            for k, v in r.items():
                if v == "":
                    out[k] = None
                elif v in ("true", "false"):
                    out[k] = v == "true"
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
