"""Speculative rejection (Sun et al., "Fast Best-of-N Decoding via Speculative Rejection", NeurIPS 2024): generate
every sample up to a rejection point, score the partial samples with a reward model there, keep the best share of
each question's samples and generate only those to the end.

The score of a partial sample is the reward head read at its last token so far (`SampleScores.token_reward`: the
same head that gives the final reward at the EOS); a sample that finished before the rejection point is scored at
its end and competes like the others. The kept samples vote (this notebook answers by majority vote; the paper picks
the best final reward among them). A replay on the finished samples, exact because a sample's tokens depend only on
(seed, sample id): the reward model reads each sample's prompt and its tokens up to the rejection point once.
"""

from __future__ import annotations

import numpy as np

from .cost import Spend, scorer_reads
from .samples import SampleSet


def partial_scores(token_reward: np.ndarray, lengths: np.ndarray, point: int) -> np.ndarray:
    """(S,) the reward head at response token min(point, length - 1) of each sample: what the reward model says
    after reading the first point + 1 tokens (all of a shorter sample)."""
    at = np.minimum(point, np.asarray(lengths) - 1)
    return token_reward[np.arange(len(at)), at].astype(float)


def rejection_spend(ss: SampleSet, token_reward: np.ndarray, prompts: np.ndarray, point: int, keep_fraction: float,
                    scorer_params: float) -> Spend:
    """Speculative rejection at response token `point`: per question the ceil(keep_fraction x n) samples with the
    highest `partial_scores` (ties: the earlier sample) continue to their end and vote; the others stop after
    point + 1 tokens. The scorer reads every sample's prompt and its first point + 1 tokens."""
    score = partial_scores(token_reward, ss.length, point)
    kept = np.zeros(len(score), dtype=bool)
    for q in range(ss.n_questions):
        idx = np.flatnonzero(ss.question == q)
        n = max(1, int(np.ceil(keep_fraction * len(idx) - 1e-9)))
        kept[idx[np.argsort(-score[idx], kind="stable")[:n]]] = True
    upto = np.minimum(point + 1, ss.length)
    generated = np.where(kept, ss.length, upto)
    return Spend(np.ones(len(score), dtype=bool), generated, kept, scorer_read=scorer_reads(prompts, upto),
                 scorer_params=scorer_params)
