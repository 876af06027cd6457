"""One operating point of one method on one set: its vote accuracy and its cost (`evaluate_spend`), and the choice
of a method's operating point on validation questions by compute saved (`choose_point`)."""

from __future__ import annotations

import numpy as np

from .cost import Spend, flops, full_spend
from .samples import SampleSet
from .voting import vote_credit


def evaluate_spend(ss: SampleSet, spend: Spend, prompts: np.ndarray, policy_params: float, tie_break: str) -> dict:
    """Vote accuracy and cost of `spend` on `ss`: accuracy (mean credit; `spend.credit` when given, else the
    (weighted) vote over the kept samples with `tie_break`), credit (Q,), the FLOPs of `cost.flops`,
    share_compute_saved (1 - FLOPs / FLOPs of generating every sample with no scorer), share_tokens_saved (of
    response tokens), share_started (samples the policy began) and share_kept (samples that voted)."""
    credit = spend.credit if spend.credit is not None else vote_credit(ss, spend.kept, tie_break, spend.weights)
    f = flops(spend, prompts, policy_params)
    ref = flops(full_spend(ss.length), prompts, policy_params)["flops"]
    return {"accuracy": float(np.mean(credit)), "credit": credit, **f,
            "share_compute_saved": float(1 - f["flops"] / ref) if ref > 0 else 0.0,
            "share_tokens_saved": float(1 - f["policy_tokens"] / ss.length.sum()),
            "share_started": float(np.mean(spend.started)), "share_kept": float(np.mean(spend.kept))}


def choose_point(validation: list[dict], unfiltered_accuracy: float, max_drop: float) -> int:
    """Index of the eligible point (validation accuracy >= unfiltered - max_drop) saving the most compute; among
    equal savings the more accurate, then the first. Index of the most accurate point when none is eligible."""
    best, key = None, None
    for i, r in enumerate(validation):
        if r["accuracy"] >= unfiltered_accuracy - max_drop - 1e-12:
            k = (r["share_compute_saved"], r["accuracy"])
            if key is None or k > key:
                best, key = i, k
    if best is None:
        best = int(np.argmax([r["accuracy"] for r in validation]))
    return best
