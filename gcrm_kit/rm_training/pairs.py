"""Preference pairs of notebook 01: one (correct, incorrect) pair per question from labelled samples, and the split
into training and held-out pairs."""

from __future__ import annotations

import numpy as np

from ..data import GenerationRecord, PreferencePair


def build_pairs(records: list[GenerationRecord], seed: int, exclude_prompts: set[str] = frozenset()
                ) -> tuple[list[PreferencePair], dict]:
    """One (correct, incorrect) pair per question that has both among its samples, as the paper pairs
    OpenMathInstruct-1 solutions. Questions whose prompt is in `exclude_prompts` (evaluation questions) are left
    out. Returns the pairs and counts of questions by outcome."""
    rng = np.random.default_rng([seed, 3])
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    pairs, stats = [], {"questions": len(by_q), "all_correct": 0, "all_incorrect": 0, "excluded": 0, "paired": 0}
    for prompt, rs in by_q.items():
        if prompt in exclude_prompts:
            stats["excluded"] += 1
            continue
        good = sorted({r.response for r in rs if r.is_correct})
        bad = sorted({r.response for r in rs if not r.is_correct})
        if not good:
            stats["all_incorrect"] += 1
        elif not bad:
            stats["all_correct"] += 1
        else:
            pairs.append(PreferencePair(prompt, good[rng.integers(len(good))], bad[rng.integers(len(bad))],
                                        meta={"split": rs[0].meta.get("split")}))
            stats["paired"] += 1
    return pairs, stats


def split_heldout(pairs: list[PreferencePair], fraction: float, seed: int
                  ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Shuffle and split pairs into (train, held-out)."""
    order = np.random.default_rng([seed, 4]).permutation(len(pairs))
    n_held = max(1, int(round(fraction * len(pairs))))
    held = [pairs[i] for i in order[:n_held]]
    train = [pairs[i] for i in order[n_held:]]
    return train, held
