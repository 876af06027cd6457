"""The pruning rule and what it costs: where each sample is pruned at a threshold (`first_below`, shared with
online generation, and `prune_positions`), the threshold grid and its choice on validation questions, random pruning
at a matched budget, and the vote accuracy, token accounting and statistics of one pruning decision.

A sample is pruned at the first response token t >= k (`skip_tokens`) whose score falls below a threshold tau; it
generated tokens 0..t and the tokens it would still have produced count as saved.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import evaluation
from .samples import SampleSet
from .voting import vote_credit


def first_below(scores: torch.Tensor, valid: torch.Tensor, threshold: float, skip: int, offset: int = 0
                ) -> torch.Tensor:
    """The pruning rule, shared by offline filtering and online generation.

    scores, valid: (B, C) per-token scores of response tokens ``offset .. offset + C - 1`` and which of them
    exist. A sample is pruned at the first response token t >= `skip` whose score is below `threshold`
    (PAPER.md section 4: the first `skip` tokens are noisy and never prune). Returns (B,) long: that t, or -1.
    """
    pos = torch.arange(scores.shape[1], device=scores.device) + offset
    hit = valid.bool() & (pos >= skip)[None, :] & (scores < threshold)
    first = torch.where(hit.any(1), hit.float().argmax(1) + offset, torch.full_like(hit[:, 0], -1, dtype=torch.long))
    return first.long()


def prune_positions(scores: np.ndarray, threshold: float, skip: int) -> np.ndarray:
    """(S, L) per-token scores (NaN past each sample's end) -> (S,) response index where each sample is pruned,
    or -1. The rule is `first_below`, the one online generation applies."""
    s = torch.from_numpy(np.nan_to_num(scores, nan=np.inf))
    valid = torch.from_numpy(~np.isnan(scores))
    return first_below(s, valid, float(threshold), skip).numpy()


def evaluate_pruning(ss: SampleSet, prune_at: np.ndarray, tie_break: str, all_pruned: str) -> dict:
    """Vote accuracy and cost of one pruning decision per sample ((S,) prune index or -1).

    A pruned sample generated tokens 0..t (t+1 tokens: the token whose score fell must exist to be scored) and
    saves the rest; a kept sample generated all of them. Questions whose samples were all pruned abstain
    (credit 0), or with `all_pruned='unfiltered'` fall back to the vote over all their samples, whose tokens then
    all count as generated. Returns accuracy, credit (Q,), shares of samples pruned and tokens saved, token
    counts, and how many questions had every sample pruned."""
    kept = prune_at < 0
    generated = np.where(kept, ss.length, np.minimum(prune_at + 1, ss.length))
    credit = vote_credit(ss, kept, tie_break)
    n_kept = np.bincount(ss.question, weights=kept.astype(float), minlength=ss.n_questions)
    all_gone = n_kept == 0
    if all_pruned == "unfiltered" and all_gone.any():
        full = vote_credit(ss, np.ones_like(kept), tie_break)
        credit = np.where(all_gone, full, credit)
        generated = np.where(all_gone[ss.question], ss.length, generated)
    elif all_pruned not in ("abstain", "unfiltered"):
        raise ValueError(f"unknown all_pruned {all_pruned!r}")
    total = int(ss.length.sum())
    return {"accuracy": float(credit.mean()), "credit": credit, "share_pruned": float((~kept).mean()),
            "tokens_generated": int(generated.sum()), "tokens_total": total,
            "share_tokens_saved": float(1 - generated.sum() / total), "questions_all_pruned": int(all_gone.sum())}


def pruning_statistics(ss: SampleSet, prune_at: np.ndarray) -> dict:
    """The paper's statistics of one pruning decision: proportion of correct samples among the kept ones vs all
    of them, and kept vs pruned.

    `ttest_kept_vs_all` is the released evaluation's test (its metrics.py): Student's t-test (equal variances,
    scipy's `ttest_ind` default) of the per-question share correct among kept samples against the per-question
    share correct among all samples; a question whose samples are all pruned counts with all of them, as the
    released code falls back to the unfiltered set there. `ttest_kept_vs_pruned` compares disjoint groups of
    samples (Welch's t-test), the cleaner test."""
    kept = prune_at < 0
    c = ss.correct.astype(float)
    questions = np.unique(ss.question)
    share_all = np.array([c[ss.question == q].mean() for q in questions])
    share_kept = np.array([c[(ss.question == q) & kept].mean() if (kept & (ss.question == q)).any()
                           else c[ss.question == q].mean() for q in questions])
    return {"correct_kept": float(c[kept].mean()) if kept.any() else float("nan"),
            "correct_all": float(c.mean()),
            "correct_pruned": float(c[~kept].mean()) if (~kept).any() else float("nan"),
            "ttest_kept_vs_all": evaluation.student_ttest(share_kept, share_all),
            "ttest_kept_vs_pruned": evaluation.welch_ttest(c[kept], c[~kept])}


def min_after(scores: np.ndarray, skip: int) -> np.ndarray:
    """(S, L) scores -> (S,) each sample's lowest score over response tokens >= skip (+inf when there are none):
    the statistic the pruning rule thresholds (a sample is pruned iff it is below tau)."""
    s = np.where(np.arange(scores.shape[1])[None, :] >= skip, scores, np.nan)
    return np.nanmin(np.where(np.isnan(s), np.inf, s), axis=1)


def threshold_grid(scores: np.ndarray, skip: int, quantiles: list[float]) -> np.ndarray:
    """Thresholds that prune a share `quantiles` of these samples: the rule prunes a sample when its lowest score
    over response tokens >= `skip` is below tau, so for the n sorted minima m, quantile q gives the midpoint
    between m[j-1] and m[j] with j = round(q n) (j samples pruned); 0 and 1 fall just outside the range.
    Midpoints keep every threshold away from a sample's own score, so float noise cannot flip a decision."""
    mins = np.sort(min_after(scores, skip))
    mins = mins[np.isfinite(mins)].astype(float)
    n = len(mins)
    if n == 0:
        return np.zeros(len(quantiles))
    pad = 0.05 * (mins[-1] - mins[0]) + 1e-6
    ext = np.concatenate([[mins[0] - 2 * pad], mins, [mins[-1] + 2 * pad]])
    j = np.clip(np.round(np.asarray(quantiles) * n).astype(int), 0, n)
    return (ext[j] + ext[j + 1]) / 2


def random_matched(ss: SampleSet, reference: np.ndarray, skip: int, rng: np.random.Generator) -> np.ndarray:
    """Random pruning at the budget of `reference` ((S,) prune index or -1): within each question, the
    reference's decisions are dealt to its samples in random order, each cut at the same fraction of the
    receiving sample's length (never before token `skip`). Same share pruned per question, about the same tokens."""
    perm = np.argsort(ss.question + rng.random(len(ss.question)), kind="stable")  # shuffles within questions
    assert np.all(np.diff(ss.question) >= 0), "samples must be ordered by question"
    src = perm  # sample i receives the decision of sample perm[i] of the same question
    ref = reference[src]
    frac = (ref + 1) / ss.length[src]
    gen = np.clip(np.round(frac * ss.length).astype(int), skip + 1, ss.length)
    out = np.where(ref >= 0, gen - 1, -1)
    out[(ref >= 0) & (ss.length <= skip)] = -1  # too short to be pruned by the rule
    return out


def choose_threshold(sweep: list[dict], unfiltered_accuracy: float, max_drop: float) -> int:
    """Index of the eligible threshold (validation accuracy >= unfiltered - max_drop) that saves the most tokens;
    among equal savings the more accurate. Index 0 (quantile 0 prunes nothing) when none is eligible."""
    best, key = 0, None
    for i, r in enumerate(sweep):
        if r["accuracy"] >= unfiltered_accuracy - max_drop - 1e-12:
            k = (r["share_tokens_saved"], r["accuracy"])
            if key is None or k > key:
                best, key = i, k
    return best
