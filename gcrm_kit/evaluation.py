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


def summarise_over_seeds(rows: Sequence[dict], by: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """Aggregate per-seed result rows: one entry per distinct combination of the `by` keys (in first-seen order)
    holding those keys, `n_seeds` (rows in the group) and, for every metric in `metrics` that the group's rows
    have, ``{"mean": ..., "std": ...}`` from `mean_std` (NaNs ignored). A metric may be a dotted path into nested
    dicts (``"auroc.id"``); its entry is then nested the same way."""
    out = []
    for key in dict.fromkeys(tuple(r[k] for k in by) for r in rows):
        group = [r for r in rows if tuple(r[k] for k in by) == key]
        entry = {**dict(zip(by, key)), "n_seeds": len(group)}
        for metric in metrics:
            path = metric.split(".")
            values = [_dig(r, path) for r in group]
            if all(v is None for v in values):
                continue
            mean, std, _ = mean_std([float("nan") if v is None else v for v in values])
            node = entry
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = {"mean": mean, "std": std}
        out.append(entry)
    return out


def _dig(row: dict, path: list[str]):
    for part in path:
        if not isinstance(row, dict) or part not in row:
            return None
        row = row[part]
    return row


def pairwise_p_above_chance(accuracy: float | None, n_pairs: int) -> float | None:
    """One-sided binomial p-value of a held-out pairwise accuracy against chance (0.5) over `n_pairs` pairs; None
    without held-out pairs. A reward model that stays near chance learned nothing its mean over seeds should hide."""
    if accuracy is None or not n_pairs:
        return None
    from scipy.stats import binomtest

    return float(binomtest(int(round(accuracy * n_pairs)), n_pairs, 0.5, alternative="greater").pvalue)


# Best-of-n accuracy, exact rather than simulated: among N samples of a question ranked by reward, the best of a
# uniformly drawn n-subset is the sample of rank r (0 = highest) with probability C(N-1-r, n-1) / C(N, n). Samples
# with equal rewards share their mean correctness (a random tie-break). The oracle picks a right sample whenever
# one of the n is right: 1 - C(N-c, n) / C(N, n) with c right samples.


def rank_weights(N: int, n: int) -> np.ndarray:
    """(N,) probability that the sample of rank r (0 = highest reward) is the best of a uniform n-subset of N."""
    if not 1 <= n <= N:
        raise ValueError(f"n = {n} must be between 1 and the {N} samples per question")
    return np.array([math.comb(N - 1 - r, n - 1) for r in range(N)], dtype=float) / math.comb(N, n)


def best_of_n_accuracy(rewards: np.ndarray, correct: np.ndarray, ns: list[int]) -> np.ndarray:
    """Expected share of questions whose best-of-n pick by `rewards` is right, for each n in `ns`.
    rewards, correct: (Q, N) arrays (N samples per question). Returns (len(ns),)."""
    rewards, correct = np.asarray(rewards, dtype=float), np.asarray(correct, dtype=float)
    Q, N = rewards.shape
    ranked = np.empty_like(correct)
    for q in range(Q):
        order = np.argsort(-rewards[q], kind="stable")
        r, c = rewards[q][order], correct[q][order]
        # tied rewards: each tied sample stands for the group's mean correctness
        _, group, counts = np.unique(r, return_inverse=True, return_counts=True)
        ranked[q] = np.bincount(group, weights=c)[group] / counts[group]
    return np.array([float((ranked @ rank_weights(N, n)).mean()) for n in ns])


def oracle_accuracy(correct: np.ndarray, ns: list[int]) -> np.ndarray:
    """Expected share of questions with at least one right sample among a uniform n-subset, for each n."""
    correct = np.asarray(correct, dtype=bool)
    Q, N = correct.shape
    c = correct.sum(1)
    return np.array([float(np.mean([1.0 - math.comb(N - k, n) / math.comb(N, n) for k in c])) for n in ns])
