"""Per-step verdicts in ProcessBench's terms: a solution's label is the index of its first wrong step (0-based), -1
when every step is right (`gcrm_kit.evaluation.processbench_scores` scores such predictions).

- `first_below(step_scores, threshold)`: a process reward model's per-step scores (higher: more likely right) ->
  the predicted first wrong step, the first step scored below the threshold, or -1;
- `choose_threshold(step_scores, labels)`: the threshold with the highest ProcessBench F1 on validation solutions,
  as the benchmark calibrates a PRM's threshold on held-out solutions before scoring it elsewhere;
- toy-world solutions ("7+3=0;0*2=0;A:0"): `toy_steps` splits one into its steps at
  `toyworld.problems.STEP_SEP` (the final answer "A:x" is the last step), `toy_first_error_step` maps the
  verifier's `first_error_char` (the character where the first wrong step starts, None when none is wrong) to the
  step index, and `toy_processbench_records` gives sampled records ProcessBench's meta (steps, label, id), so the
  kit's own solutions can be scored and written (`real_data.write_processbench`) like the benchmark's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import GenerationRecord
from .evaluation import processbench_scores
from .toyworld.problems import STEP_SEP


def first_below(step_scores: Sequence[float], threshold: float) -> int:
    """Index of the first step whose score is strictly below `threshold`, -1 when none is. step_scores: (S,) with
    S >= 1, one score per step in order. Raises ValueError for no scores or a NaN score (a step the reader could not
    score is not a right step)."""
    s = _scores(step_scores, "step_scores")
    below = np.flatnonzero(s < threshold)
    return int(below[0]) if len(below) else -1


def _scores(values: Sequence[float], name: str) -> np.ndarray:
    s = np.asarray(values, dtype=float)
    if s.ndim != 1 or len(s) == 0:
        raise ValueError(f"{name} must be a non-empty list of per-step scores, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"{name} has a NaN score at step {int(np.flatnonzero(np.isnan(s))[0])}; every step needs "
                         "a score")
    return s


def choose_threshold(step_scores: Sequence[Sequence[float]], labels: Sequence[int],
                     candidates: Sequence[float] | None = None) -> tuple[float, dict]:
    """The threshold for `first_below` with the highest ProcessBench F1 on validation solutions, and the scores
    (`processbench_scores`' dict) it gets there.

    step_scores: one (S_i,) list per solution; labels: (N,) first wrong step or -1, each below its S_i. candidates:
    thresholds to try; by default the midpoints between consecutive distinct scores, which give every distinct
    prediction (a midpoint, unlike a score itself, does not sit on a validation score), or the one score when all
    are equal. Ties go to the lowest threshold (the fewest steps called wrong). Raises ValueError when the lengths
    differ, a label is outside its solution's steps, or the solutions lack an erroneous or a correct one (F1 is
    then undefined at every threshold)."""
    if len(step_scores) != len(labels):
        raise ValueError(f"{len(step_scores)} solutions' step scores for {len(labels)} labels; give one label per "
                         "solution")
    base = processbench_scores([-1] * len(labels), labels)  # checks the labels are step indices or -1
    if not base["n_erroneous"] or not base["n_correct"]:
        raise ValueError(f"choosing a threshold needs erroneous and correct solutions; got {base['n_erroneous']} "
                         f"erroneous and {base['n_correct']} correct")
    scores = [_scores(s, f"step_scores[{i}]") for i, s in enumerate(step_scores)]
    for i, (s, y) in enumerate(zip(scores, labels)):
        if y >= len(s):
            raise ValueError(f"labels[{i}] = {y} is outside its {len(s)} scored steps (0..{len(s) - 1}, or -1)")
    if candidates is None:
        distinct = np.unique(np.concatenate(scores))
        cand = (distinct[:-1] + distinct[1:]) / 2 if len(distinct) > 1 else distinct
    else:
        cand = np.sort(np.asarray(candidates, dtype=float))
        if cand.ndim != 1 or len(cand) == 0 or np.isnan(cand).any():
            raise ValueError("candidates must be a non-empty list of thresholds without NaN")
    hits_err, hits_ok = np.zeros(len(cand)), np.zeros(len(cand))
    for s, y in zip(scores, labels):
        pred = _predictions(s, cand)
        if y >= 0:
            hits_err += pred == y
        else:
            hits_ok += pred == -1
    acc_err, acc_ok = hits_err / base["n_erroneous"], hits_ok / base["n_correct"]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(acc_err + acc_ok > 0, 2 * acc_err * acc_ok / (acc_err + acc_ok), 0.0)
    best = float(cand[int(np.argmax(f1))])  # argmax: the first, i.e. lowest, of equally good thresholds
    return best, processbench_scores([first_below(s, best) for s in scores], labels)


def _predictions(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """`first_below(scores, t)` for every t in `thresholds` (K,) at once -> (K,). The first step below t is the
    first place the running minimum of the scores drops below t; the running minimum never rises, so its negation
    is sorted and a binary search finds that place."""
    neg_min = -np.minimum.accumulate(scores)
    pred = np.searchsorted(neg_min, -thresholds, side="right")
    return np.where(pred == len(scores), -1, pred)


# ------------------------------------------------------------------------------------------------ toy world


def toy_steps(response: str) -> list[str]:
    """A toy-world solution's steps: its text split at `STEP_SEP`, the final answer ("A:x") being the last step,
    so "7+3=0;0*2=0;A:0" has the steps ["7+3=0", "0*2=0", "A:0"]."""
    return response.split(STEP_SEP)


def toy_first_error_step(response: str, first_error_char: int | None, is_correct: bool) -> int:
    """The ProcessBench label of a toy-world solution: the index among `toy_steps(response)` of the step holding
    `first_error_char` (the verifier's offset of the first wrong step's start, `Verdict.first_error_char`; where it
    reports missing steps it points at the answer, which came too early), or, with no wrong step located, -1 for a
    correct solution and the answer step (the last) for an incorrect one: every step was right but the answer, or
    its form, is not. Raises ValueError for an offset that is not an integer inside the response."""
    if first_error_char is None:
        return -1 if is_correct else len(toy_steps(response)) - 1
    c = first_error_char
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= len(response):
        raise ValueError(f"first_error_char must be null or a character offset in the response (0..{len(response)}"
                         f"), got {c!r}")
    return response.count(STEP_SEP, 0, int(c))


def toy_processbench_records(records: Sequence[GenerationRecord]) -> list[GenerationRecord]:
    """Toy-world records (meta "first_error_char", as `toyworld.sampling.sample_split` writes it) -> copies whose
    meta also holds ProcessBench's "steps" (`toy_steps`), "label" (`toy_first_error_step`) and "id" (kept when the
    record has one, else "toy-<index>"). Raises ValueError naming the record when its meta has no first_error_char
    or a bad one."""
    out = []
    for i, r in enumerate(records):
        if "first_error_char" not in r.meta:
            raise ValueError(f"record {i}: meta has no 'first_error_char' (the verifier's first wrong step; null: "
                             "none), so its first wrong step is unknown")
        try:
            label = toy_first_error_step(r.response, r.meta["first_error_char"], r.is_correct)
        except ValueError as e:
            raise ValueError(f"record {i}: meta {e}") from None
        meta = {**r.meta, "steps": toy_steps(r.response), "label": label, "id": r.meta.get("id", f"toy-{i}")}
        out.append(GenerationRecord(r.prompt, r.response, r.is_correct, r.answer, meta))
    return out
