"""Metrics: AUROC for correctness (scikit-learn), pairwise accuracy, aggregation over seeds."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for `labels` (True = correct). NaN when only one class is present,
    since AUROC is undefined then (it is reported as such, not as 0.5)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))


def pairwise_accuracy(r_chosen: Sequence[float], r_rejected: Sequence[float]) -> float:
    """Share of pairs whose chosen response gets the strictly higher reward (ties count as errors)."""
    c, r = np.asarray(r_chosen, dtype=float), np.asarray(r_rejected, dtype=float)
    if len(c) == 0:
        return float("nan")
    return float((c > r).mean())


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count, ignoring NaNs."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, int(len(v))
