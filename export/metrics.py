"""Classification quality from a confusion matrix. Pure functions: the runner counts, this derives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRIC_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "gmean")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(cm: Sequence[Sequence[int]]) -> dict[str, float]:
    """Accuracy, macro precision / recall (sensitivity) / F1 and the geometric mean of per-class recall.

    Classes absent from both truth and predictions are left out of the macro averages; a class that is
    never predicted has precision 0 (the sklearn convention), so a degenerate model cannot look good.
    """
    m = np.asarray(cm, dtype=np.float64)
    total = m.sum()
    if m.ndim != 2 or m.shape[0] != m.shape[1] or total == 0:
        raise ValueError("confusion matrix must be square and non-empty")
    tp = np.diag(m)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    present = (support + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    has_truth = support > 0
    gmean = float(np.prod(recall[has_truth]) ** (1.0 / has_truth.sum()))
    return {
        "accuracy": float(tp.sum() / total),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "gmean": gmean,
    }
