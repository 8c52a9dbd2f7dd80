"""Accuracy of an artifact, measured by running the ONNX FILE in onnxruntime over the test split.

Never assumed and never taken from the PyTorch model: a broken export or a bad quantization shows up
here as a lower number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.onnx_export import ort_session
from export.metrics import classification_metrics, confusion_matrix


def evaluate_onnx(path: Path, x: np.ndarray, y: np.ndarray, num_classes: int, batch: int = 64) -> dict:
    """Confusion matrix and accuracy / macro precision / recall / F1 / G-mean of the file on (x, y)."""
    sess = ort_session(path, threads=0)
    name = sess.get_inputs()[0].name
    preds = []
    for i in range(0, len(x), batch):
        out = sess.run(None, {name: np.ascontiguousarray(x[i:i + batch], dtype=np.float32)})[0]
        preds.append(np.asarray(out).reshape(len(out), -1).argmax(1))
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    n = max(num_classes, int(pred.max()) + 1 if len(pred) else 0, int(y.max()) + 1 if len(y) else 0)
    cm = confusion_matrix(y, pred, n)
    metrics = classification_metrics(cm)
    return {**metrics, "confusion_matrix": cm.tolist(), "n_test_samples": int(len(y))}
