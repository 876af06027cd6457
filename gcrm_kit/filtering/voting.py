"""Voting over a question's samples: the credit of a (weighted) majority vote with its tie rule, the winning
answer, and the two reward-model baselines that prune nothing (best-of-N and reward-weighted voting).

A tie for the most votes is broken at random by default (``tie_break='random'``: a k-way tie containing the right
answer earns expected credit 1/k); ``tie_break='favour_correct'`` counts such a tie as right, as the released
code's vote does, and ``tie_break='loss'`` counts every tie as wrong.
"""

from __future__ import annotations

import numpy as np

from .samples import SampleSet


def vote_credit(ss: SampleSet, kept: np.ndarray, tie_break: str = "random", weights: np.ndarray | None = None
                ) -> np.ndarray:
    """Per-question credit (Q,) of the (weighted) majority vote over the kept samples that have an answer.

    The answer(s) with the most votes win. One winner: credit 1 if it is right. A tie of k answers: `random` (the
    default) breaks it at random, so the credit is the expected one, (right winners)/k, i.e. 1/k when one of the k
    is right; `loss` gives 0; `favour_correct` gives 1 if any winner is right (the released code's tie-favouring
    vote, which overstates accuracy). No kept answer: 0."""
    if tie_break not in ("random", "loss", "favour_correct"):
        raise ValueError(f"unknown tie_break {tie_break!r}")
    Q, A = ss.group_correct.shape
    use = kept & (ss.answer >= 0)
    w = np.ones(len(ss.answer)) if weights is None else np.asarray(weights, dtype=float)
    counts = np.zeros((Q, A))
    np.add.at(counts, (ss.question[use], ss.answer[use]), w[use])
    voted = np.zeros((Q, A), dtype=bool)
    voted[ss.question[use], ss.answer[use]] = True
    top = np.where(voted, counts, -np.inf).max(1)
    answered = voted.any(1)
    winners = voted & (counts == top[:, None]) & answered[:, None]
    n_win = winners.sum(1)
    right = (winners & ss.group_correct).sum(1)
    if tie_break == "random":
        return np.where(n_win > 0, right / np.maximum(n_win, 1), 0.0)
    if tie_break == "loss":
        return ((n_win == 1) & (right == 1)).astype(float)
    return (right > 0).astype(float)


def vote_winner(ss: SampleSet, kept: np.ndarray) -> list[str | None]:
    """The answer string with the most kept votes per question (first in order on a tie; None without votes)."""
    out = []
    for qi in range(ss.n_questions):
        m = (ss.question == qi) & kept & (ss.answer >= 0)
        if not m.any():
            out.append(None)
            continue
        codes, counts = np.unique(ss.answer[m], return_counts=True)
        out.append(ss.answers[qi][int(codes[counts.argmax()])])
    return out


def best_of_n_credit(ss: SampleSet, reward: np.ndarray) -> np.ndarray:
    """Per-question credit of answering with the sample of the highest final reward."""
    credit = np.zeros(ss.n_questions)
    for qi in range(ss.n_questions):
        idx = np.flatnonzero(ss.question == qi)
        credit[qi] = float(ss.correct[idx[np.argmax(reward[idx])]])
    return credit


def weighted_credit(ss: SampleSet, reward: np.ndarray, tie_break: str) -> np.ndarray:
    """Per-question credit of the vote weighted by sigmoid(final reward) (the BT probability of beating a
    reward-0 response)."""
    return vote_credit(ss, np.ones(len(reward), dtype=bool), tie_break, 1 / (1 + np.exp(-reward.astype(float))))

