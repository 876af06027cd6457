"""The best-of-n estimator against brute force over every n-subset, ties included."""

from itertools import combinations

import numpy as np
import pytest

from gcrm_kit.evaluation import best_of_n_accuracy, oracle_accuracy, rank_weights
from gcrm_kit.rm_training.best_of_n import summarise


def _brute(rewards, correct, n):
    """Mean over questions of the pick's correctness, averaged over all n-subsets and over ties at the top."""
    out = []
    for r, c in zip(rewards, correct):
        vals = []
        for sub in combinations(range(len(r)), n):
            top = max(r[i] for i in sub)
            vals.append(np.mean([c[i] for i in sub if r[i] == top]))
        out.append(np.mean(vals))
    return float(np.mean(out))


def test_best_of_n_equals_brute_force_with_ties():
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 4, size=(7, 6)).astype(float)  # few values: many ties
    correct = rng.random((7, 6)) < 0.4
    ns = [1, 2, 3, 6]
    got = best_of_n_accuracy(rewards, correct, ns)
    assert got == pytest.approx([_brute(rewards, correct, n) for n in ns], abs=1e-12)
    assert got[0] == pytest.approx(correct.mean())  # n = 1 is a random pick
    oracle = oracle_accuracy(correct, ns)
    brute_oracle = [np.mean([np.mean([any(c[i] for i in s) for s in combinations(range(6), n)]) for c in correct])
                    for n in ns]
    assert oracle == pytest.approx(brute_oracle, abs=1e-12)
    assert np.all(got <= oracle + 1e-12)


def test_perfect_and_inverted_rewards_reach_the_bounds():
    correct = np.array([[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    ns = [1, 2, 4]
    assert best_of_n_accuracy(correct.astype(float), correct, ns) == pytest.approx(oracle_accuracy(correct, ns))
    # a reward that prefers wrong answers gets worse as n grows: over-optimisation in its purest form
    inv = best_of_n_accuracy(-correct.astype(float), correct, ns)
    assert inv[0] > inv[1] > inv[2] == 0.0


def test_rank_weights_and_summary():
    w = rank_weights(5, 2)
    assert w.sum() == pytest.approx(1.0) and w[-1] == 0.0 and w[0] == pytest.approx(4 / 10)
    with pytest.raises(ValueError, match="between 1 and the 5 samples"):
        rank_weights(5, 6)
    rows = [{"reward_model": "a", "n_train_pairs": 10, "n": 2, "accuracy": x} for x in (0.5, 0.7)]
    (s,) = summarise(rows)
    assert s["accuracy"] == pytest.approx(0.6) and s["n_seeds"] == 2 and s["std"] == pytest.approx(0.1414, abs=1e-3)
