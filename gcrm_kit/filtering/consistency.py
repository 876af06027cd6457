"""Drawing a question's samples one after another and stopping once the answers drawn so far agree: early-stopping
self-consistency (ESC; Li et al. 2024, "Escape Sky-high Cost: Early-stopping Self-Consistency for Multi-step
Reasoning", ICLR 2024) and adaptive consistency (Aggarwal et al. 2023, "Let's Sample Step by Step:
Adaptive-Consistency for Efficient Reasoning and Coding with LLMs", EMNLP 2023).

Both are replays on the finished samples: a sample's tokens depend only on (seed, sample id) (`noise`), so drawing
the samples of a question in some order and stopping early gives exactly the samples it would have generated. The
order is a random permutation per question (`draw_orders`), one per seed. Samples never drawn cost nothing; drawn
ones are generated in full, and the vote is over every drawn sample.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .cost import Spend
from .samples import SampleSet


def draw_orders(ss: SampleSet, seed: list[int] | int) -> list[np.ndarray]:
    """Per question, the indices (into the set's samples) in the order they are drawn: a seeded permutation."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(ss.question == q)) for q in range(ss.n_questions)]


def orders_of(samples: dict[str, SampleSet], seed: int, seed_index: int) -> dict[str, list[np.ndarray]]:
    """{set: `draw_orders`} for rm seed index `seed_index` of a run seeded with `seed`: the draw orders the frontier
    and the online runs of the sequential methods share."""
    return {s: draw_orders(ss, [seed, 7, seed_index, j]) for j, (s, ss) in enumerate(samples.items())}


def esc_drawn(answers: np.ndarray, window: int) -> int:
    """ESC's stop point for one question: answers (n,) codes in draw order (-1: no answer). Samples are drawn a
    window of `window` at a time; drawing stops after the first window whose answers are all the same (and all
    present). Returns how many samples were drawn (all n when no window agrees; the last window may be short)."""
    n = len(answers)
    for end in range(window, n + window, window):
        w = answers[end - window:min(end, n)]
        if len(w) == window and w[0] >= 0 and np.all(w == w[0]):
            return min(end, n)
    return n


def beta_lead_probability(top: int, second: int) -> float:
    """Adaptive consistency's Beta criterion: with `top` votes for the leading answer and `second` for the
    runner-up, the posterior probability Beta(top + 1, second + 1) puts on the leader's share of the two being
    above one half."""
    return float(stats.beta.sf(0.5, top + 1, second + 1))


def adaptive_drawn(answers: np.ndarray, threshold: float) -> int:
    """Adaptive consistency's stop point for one question: after each drawn sample, the two most common answers so
    far (samples without an answer do not vote) give `beta_lead_probability`; drawing stops once it reaches
    `threshold`. Returns how many samples were drawn."""
    counts: dict[int, int] = {}
    for k, a in enumerate(answers, 1):
        if a >= 0:
            counts[int(a)] = counts.get(int(a), 0) + 1
        if counts:
            c = sorted(counts.values(), reverse=True) + [0]
            if beta_lead_probability(c[0], c[1]) >= threshold:
                return k
    return len(answers)


def stop_counts(ss: SampleSet, orders: list[np.ndarray], rule: str, setting: float) -> list[int]:
    """Per question, how many samples are drawn (in `orders`) before `rule` stops: ``esc`` with window size
    `setting`, ``adaptive`` with threshold `setting`. Each rule decides from the answers drawn so far only, so this
    is where drawing stops whatever comes after."""
    if rule not in ("esc", "adaptive"):
        raise ValueError(f"unknown rule {rule!r}; expected 'esc' or 'adaptive'")
    out = []
    for order in orders:
        a = ss.answer[order]
        out.append(esc_drawn(a, int(setting)) if rule == "esc" else adaptive_drawn(a, float(setting)))
    return out


def sequential_spend(ss: SampleSet, orders: list[np.ndarray], rule: str, setting: float) -> Spend:
    """The spend of drawing every question's samples in `orders` and stopping by `rule` (`stop_counts`): drawn
    samples are started, generated in full and vote."""
    drawn = np.zeros(len(ss.answer), dtype=bool)
    for order, k in zip(orders, stop_counts(ss, orders, rule, setting)):
        drawn[order[:k]] = True
    return Spend(drawn, np.where(drawn, ss.length, 0), drawn)
