"""Classification metrics from a confusion matrix, checked against scikit-learn's definitions."""

import numpy as np
import pytest
from sklearn import metrics as skm

from export.metrics import classification_metrics, confusion_matrix


def test_metrics_match_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    p = np.where(rng.random(400) < 0.7, y, rng.integers(0, 5, 400))
    m = classification_metrics(confusion_matrix(y, p, 5))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(y, p, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, p, average="macro"))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    recalls = skm.recall_score(y, p, average=None)
    assert m["gmean"] == pytest.approx(float(np.prod(recalls) ** (1 / 5)))


def test_a_class_never_recalled_zeroes_the_gmean():
    m = classification_metrics([[5, 0], [5, 0]])
    assert m["accuracy"] == 0.5 and m["gmean"] == 0.0 and m["precision_macro"] == 0.25
