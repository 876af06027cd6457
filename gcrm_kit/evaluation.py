"""Metrics: AUROC for correctness (scikit-learn; row-wise and bootstrapped for many resamples at once), pairwise
accuracy, aggregation over seeds, NaN-aware means and stds over seeds."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats
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


def within_group_auroc(scores: Sequence[float], labels: Sequence[bool], groups: Sequence[int]) -> float:
    """AUROC restricted to pairs inside one group: the share of (positive, negative) pairs with the same group id
    in which the positive one has the higher score (ties count half), pooled over groups in increasing id order.
    scores, labels (True = correct), groups: (S,) each. NaN without such a pair. Filtering uses it with one group
    per question: the comparisons a vote can make."""
    x, y, g = np.asarray(scores), np.asarray(labels, dtype=bool), np.asarray(groups)
    wins = total = 0.0
    for gi in np.unique(g):
        m = g == gi
        a, b = x[m & y], x[m & ~y]
        if len(a) and len(b):
            d = a[:, None] - b[None, :]
            wins += (d > 0).sum() + 0.5 * (d == 0).sum()
            total += d.size
    return float(wins / total) if total else float("nan")


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch's t-test (scipy ttest_ind, unequal variances) of two samples: {"t", "p"}, NaN for both when either
    sample has fewer than 2 values."""
    return _ttest_ind(a, b, equal_var=False)


def student_ttest(a: Sequence[float], b: Sequence[float]) -> dict:
    """Student's t-test (scipy ttest_ind with equal variances, its default) of two samples: {"t", "p"}, NaN for
    both when either sample has fewer than 2 values."""
    return _ttest_ind(a, b, equal_var=True)


def _ttest_ind(a: Sequence[float], b: Sequence[float], equal_var: bool) -> dict:
    if len(a) < 2 or len(b) < 2:
        return {"t": float("nan"), "p": float("nan")}
    r = stats.ttest_ind(a, b, equal_var=equal_var)
    return {"t": float(r.statistic), "p": float(r.pvalue)}


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired t-test (scipy ttest_rel) of two equal-length samples, e.g. per-question credit of a filtered and the
    unfiltered vote: {"t", "p"}, NaN for both when the two never differ (np.allclose)."""
    if np.allclose(a, b):
        return {"t": float("nan"), "p": float("nan")}
    r = stats.ttest_rel(a, b)
    return {"t": float(r.statistic), "p": float(r.pvalue)}


def nanmean0(arrays) -> np.ndarray:
    """Mean over the first axis ignoring NaNs; NaN (without a warning) where every entry is NaN."""
    a = np.asarray(arrays, dtype=float)
    n = (~np.isnan(a)).sum(0)
    return np.where(n > 0, np.nansum(a, 0) / np.maximum(n, 1), np.nan)


def nanstd0(arrays) -> np.ndarray:
    """Sample std (ddof 1) over the first axis ignoring NaNs: 0 for a single value, NaN for none."""
    a = np.asarray(arrays, dtype=float)
    n = (~np.isnan(a)).sum(0)
    dev = np.where(np.isnan(a), 0.0, a - nanmean0(a))
    var = (dev ** 2).sum(0) / np.maximum(n - 1, 1)
    return np.where(n > 0, np.sqrt(var), np.nan)


def auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of `scores` (..., N) for boolean `labels` (..., N), ties counted half (the Mann-Whitney
    form of the area, which equals scikit-learn's roc_auc_score). NaN where a row has one class only.

    Vectorised over rows so that thousands of bootstrap resamples cost one call."""
    labels = labels.astype(bool)
    ranks = stats.rankdata(scores, axis=-1)
    n1 = labels.sum(-1)
    n0 = labels.shape[-1] - n1
    u = (ranks * labels).sum(-1) - n1 * (n1 + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, n_bootstrap: int, seed: int, chunk: int = 100
                    ) -> np.ndarray:
    """Bootstrap AUROC of the seed mean: scores (S, F, N) of S reward-model seeds at F fractions over N samples.

    Each resample draws N samples with replacement, the same samples for every seed and fraction, and averages
    the S AUROCs. Returns (n_bootstrap, F)."""
    S, F, N = scores.shape
    rng = np.random.default_rng([seed, 22])
    out = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, N, size=(b, N))
        sc = scores[:, :, idx]  # (S, F, b, N)
        lab = np.broadcast_to(labels[idx], sc.shape)
        out.append(nanmean0(auroc_rows(sc, lab)).T)  # (b, F)
    return np.concatenate(out)


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


# ProcessBench (Zheng et al. 2024): each solution's label is the index of its first wrong step, -1 when every step is
# right; a reader predicts such an index. Two accuracies, one per kind of solution, and their harmonic mean, so a
# reader that calls everything right (or everything wrong at step 0) scores F1 0 however the set is balanced.


def processbench_scores(predicted: Sequence[int], labels: Sequence[int]) -> dict:
    """ProcessBench's metric of first-wrong-step predictions. predicted, labels: (N,) integers, each a step index
    (0-based) or -1 (no wrong step).

    Returns {"acc_erroneous": share of solutions with a wrong step (label >= 0) whose prediction is exactly the
    label, "acc_correct": share of all-right solutions (label -1) predicted -1, "f1": their harmonic mean,
    "n_erroneous", "n_correct"}. An accuracy over no solutions is NaN (undefined, not 0), and so is F1 then: a set
    without erroneous or without correct solutions cannot give the benchmark's F1. Both accuracies 0 give F1 0.
    Raises ValueError when the lengths differ or a value is not an integer >= -1."""
    p, y = _step_indices(predicted, "predicted"), _step_indices(labels, "labels")
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} labels; give one prediction per solution")
    wrong = y >= 0
    n_err, n_ok = int(wrong.sum()), int((~wrong).sum())
    acc_err = float((p[wrong] == y[wrong]).mean()) if n_err else float("nan")
    acc_ok = float((p[~wrong] == -1).mean()) if n_ok else float("nan")
    if math.isnan(acc_err) or math.isnan(acc_ok):
        f1 = float("nan")
    else:
        f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok > 0 else 0.0
    return {"acc_erroneous": acc_err, "acc_correct": acc_ok, "f1": f1, "n_erroneous": n_err, "n_correct": n_ok}


def _step_indices(values: Sequence[int], name: str) -> np.ndarray:
    """`values` as an int array; ValueError naming `name` and the first value that is not an integer >= -1 (a bool
    or a fraction is not one: a label read wrongly would move every score)."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < -1:
            raise ValueError(f"{name}[{i}] must be a step index (an integer >= 0) or -1 (no wrong step), got "
                             f"{type(v).__name__} {v!r}")
        out.append(int(v))
    return np.asarray(out, dtype=int)
