"""What any verifier could possibly gain on a set of sampled solutions: the facts that bound every filtering and
steering method for a world and its policy.

Input: generation records (toy-world samples or real generations) with ``meta["question_id"]`` (and
``meta["split"]`` where the records span several splits) and, for the first-error facts, ``meta["first_error_char"]``
(the character offset in the response where the verifier's first wrong step starts, None when it found none), a
tokenizer, and optionally the policy's per-token log-probabilities (`gcrm_kit.confidence`). Output: `WorldBounds`.

Token counts follow the kit's encoding (`gcrm_kit.data.encode`): a sample costs its response tokens plus the EOS
when it finished (``meta["finished"]``, absent = finished), as in notebook 03's token accounting.

The facts:

1. the share of samples that are correct, overall and per split;
2. where the first wrong step starts in wrong samples: its first token's index over the response's tokens (EOS
   left out, so 0 is the first token and every value is below 1): mean, quantiles and a 10-bin histogram on [0, 1];
3. how well the policy's own confidence tells right from wrong (AUROC, `gcrm_kit.evaluation.auroc`) for the
   scores of `gcrm_kit.confidence.confidence_scores`;
4. the first-error oracle's saving: each wrong sample stops right after the end of its first wrong step (the
   token holding the next step separator after ``first_error_char``; with ``step_sep=None`` the token holding
   ``first_error_char`` itself), every other sample runs to its end; saved share of generated tokens. A wrong sample
   whose first wrong step is not followed by a separator (an error in its last step or its answer) runs to its end:
   only its EOS would say the step is over. A wrong sample with no located error cannot be stopped either;
5. the vote-level oracle's saving at equal vote accuracy: per question, the majority answer (`majority_answer`;
   ties go to the lexicographically first answer) is kept by keeping only the shortest sample that gives it (the
   first of equally short ones); every other sample stops at its first token, which counts as generated (a sample
   is only known to be worth stopping once it has started). A question with one sample keeps it whole; a question
   where no sample has an answer has no vote outcome to keep, and all its samples stop at their first token.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .confidence import CONFIDENCE_SCORES, TokenLogprobs, confidence_scores
from .data import GenerationRecord, encode
from .evaluation import auroc
from .toyworld.problems import STEP_SEP

#: quantiles (in percent) of the first wrong step's relative position
QUANTILES = (10, 25, 50, 75, 90)
#: histogram bins of the relative position over [0, 1]
N_BINS = 10
#: tokens a stopped sample counts as generated in the vote-level oracle
STOPPED_TOKENS = 1


@dataclass
class FirstErrorPositions:
    """Relative positions of the first wrong step in wrong samples. n_located: wrong samples with a located first
    error (the ones summarised); n_unlocated: wrong samples without one (``first_error_char`` None); quantiles:
    {"q10": ..., ...}; histogram: N_BINS counts over `bin_edges` (N_BINS + 1 edges on [0, 1])."""

    n_located: int
    n_unlocated: int
    mean: float
    quantiles: dict[str, float]
    histogram: list[int]
    bin_edges: list[float]


@dataclass
class WorldBounds:
    """The facts of this module's docstring for one set of records.

    share_correct_by_split: {split: share} ({} when the records have no split); first_error and
    first_error_oracle_saving: None when no record has ``meta["first_error_char"]``; confidence_auroc: {score name:
    AUROC} (None without log-probabilities), NaN when one class is missing; tokens_generated: generated tokens of all
    samples (response tokens plus EOS of finished ones); vote_accuracy: share of questions whose majority answer is
    correct (the accuracy the vote-level oracle keeps)."""

    n_samples: int
    n_questions: int
    share_correct: float
    share_correct_by_split: dict[str, float]
    first_error: FirstErrorPositions | None
    confidence_auroc: dict[str, float] | None
    tokens_generated: int
    first_error_oracle_saving: float | None
    vote_accuracy: float
    vote_oracle_saving: float
    settings: dict = field(default_factory=dict)
    """window, tail, step_sep and stopped-token count used"""

    def as_dict(self) -> dict:
        """A JSON-able dict (NaN written as None) for metrics.json."""
        return _finite(asdict(self))

    def bounds_table(self) -> pd.DataFrame:
        """One row per fact: columns fact, value, n (the samples or questions it is over)."""
        rows = [("share correct", self.share_correct, self.n_samples)]
        rows += [(f"share correct ({s})", v, None) for s, v in self.share_correct_by_split.items()]
        fe = self.first_error
        if fe is not None:
            rows.append(("first error position: mean", fe.mean, fe.n_located))
            rows += [(f"first error position: {q}", v, fe.n_located) for q, v in fe.quantiles.items()]
            rows.append(("first error position: histogram", fe.histogram, fe.n_located))
            rows.append(("wrong samples without a located error", fe.n_unlocated, None))
        for name, v in (self.confidence_auroc or {}).items():
            rows.append((f"AUROC of {name}", v, self.n_samples))
        if self.first_error_oracle_saving is not None:
            rows.append(("first-error oracle: saved share of tokens", self.first_error_oracle_saving,
                         self.tokens_generated))
        rows.append(("majority vote accuracy", self.vote_accuracy, self.n_questions))
        rows.append(("vote oracle: saved share of tokens", self.vote_oracle_saving, self.tokens_generated))
        table = pd.DataFrame(rows, columns=["fact", "value", "n"])
        table["n"] = table["n"].astype("Int64")  # counts, empty where a fact has none of its own
        return table


def _finite(x):
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _finished(r: GenerationRecord, i: int) -> bool:
    fin = r.meta.get("finished", True)
    if not isinstance(fin, bool):
        raise ValueError(f"record {i}: meta 'finished' must be true or false, got {fin!r}")
    return fin


def generated_tokens(records: Sequence[GenerationRecord], tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """Per record (n,) int arrays: its response tokens as `encode` tokenises them, and its generated tokens
    (those plus the EOS when it finished). Raises ValueError naming the record of an empty response."""
    response, generated = np.zeros(len(records), dtype=int), np.zeros(len(records), dtype=int)
    for i, r in enumerate(records):
        try:
            enc = encode(tokenizer, r.prompt, r.response)
        except ValueError as e:
            raise ValueError(f"record {i}: {e}") from None
        response[i] = enc.response_len - 1
        generated[i] = response[i] + int(_finished(r, i))
    return response, generated


def _char_token(tokenizer, text: str, char: int) -> int:
    """Index among `text`'s tokens (tokenised alone, as `encode` does) of the token holding character `char`; a
    character no token covers (whitespace a tokenizer drops) maps to the next token."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for j, (start, end) in enumerate(offsets):
        if start <= char < end or start > char:
            return j
    return len(offsets) - 1


def first_error_chars(records: Sequence[GenerationRecord]) -> list[int | None] | None:
    """``meta["first_error_char"]`` of every record, or None when no record has the key. Raises ValueError naming
    the record when only some have it, or when a value is not None or an offset inside the response."""
    has = ["first_error_char" in r.meta for r in records]
    if not any(has):
        return None
    out = []
    for i, r in enumerate(records):
        if not has[i]:
            raise ValueError(f"record {i}: meta has no 'first_error_char' while other records have it; give it "
                             "(null: no wrong step found) on every record or on none")
        c = r.meta["first_error_char"]
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < len(r.response)):
            raise ValueError(f"record {i}: meta 'first_error_char' must be null or a character offset in the "
                             f"response (0..{len(r.response) - 1}), got {c!r}")
        out.append(c)
    return out


def first_error_positions(records: Sequence[GenerationRecord], tokenizer, chars: Sequence[int | None],
                          response_tokens: np.ndarray) -> FirstErrorPositions:
    """Fact 2 over the wrong records: token index of the first wrong step's first token / response tokens."""
    rel, unlocated = [], 0
    for i, r in enumerate(records):
        if r.is_correct:
            continue
        if chars[i] is None:
            unlocated += 1
            continue
        rel.append(_char_token(tokenizer, r.response, chars[i]) / response_tokens[i])
    rel = np.asarray(rel, dtype=float)
    counts, edges = np.histogram(rel, bins=N_BINS, range=(0.0, 1.0))
    if len(rel):
        quantiles = {f"q{q}": float(np.quantile(rel, q / 100)) for q in QUANTILES}
        mean = float(rel.mean())
    else:
        quantiles, mean = {f"q{q}": float("nan") for q in QUANTILES}, float("nan")
    return FirstErrorPositions(len(rel), unlocated, mean, quantiles, counts.astype(int).tolist(), edges.tolist())


def first_error_stop(tokenizer, response: str, char: int, step_sep: str | None) -> int | None:
    """Response tokens generated up to and including the end of the step starting at character `char`: through
    the token holding the first `step_sep` at or after `char` (with `step_sep` None, the token holding `char`).
    None when no separator follows (the step runs to the end of the response)."""
    if step_sep is None:
        return _char_token(tokenizer, response, char) + 1
    end = response.find(step_sep, char)
    if end < 0:
        return None
    return _char_token(tokenizer, response, end + len(step_sep) - 1) + 1


def first_error_oracle_saving(records: Sequence[GenerationRecord], tokenizer, chars: Sequence[int | None],
                              generated: np.ndarray, step_sep: str | None = STEP_SEP) -> float:
    """Fact 4: the share of `generated` tokens (n,) saved by stopping each wrong record after its first wrong
    step (module docstring)."""
    kept = np.array(generated, dtype=int)
    for i, r in enumerate(records):
        if r.is_correct or chars[i] is None:
            continue
        stop = first_error_stop(tokenizer, r.response, chars[i], step_sep)
        if stop is not None:
            kept[i] = min(stop, kept[i])
    return float(1 - kept.sum() / generated.sum())


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """The most common answer (None or "" casts no vote); a tie goes to the lexicographically first of the tied
    answers, so the outcome does not depend on sample order. None when no sample has an answer."""
    counts = Counter(a for a in answers if a not in (None, ""))
    if not counts:
        return None
    top = max(counts.values())
    return min(a for a, c in counts.items() if c == top)


def question_groups(records: Sequence[GenerationRecord]) -> dict[tuple, list[int]]:
    """Record indices per question, keyed by (meta split or None, meta question_id), in first-seen order: the toy
    world numbers questions per split, so the split is part of a question's identity. Raises ValueError naming the
    record without a question_id."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        if "question_id" not in r.meta:
            raise ValueError(f"record {i}: meta has no 'question_id'; the vote groups samples by question")
        groups.setdefault((r.meta.get("split"), r.meta["question_id"]), []).append(i)
    return groups


def vote_oracle(records: Sequence[GenerationRecord], generated: np.ndarray) -> tuple[float, float, int]:
    """Fact 5: (saved share of `generated` tokens, vote accuracy, number of questions) of the vote-level oracle
    (module docstring). A question's vote is right when a correct record gives its majority answer."""
    kept = np.array(generated, dtype=int)
    groups = question_groups(records)
    right = 0
    for idx in groups.values():
        winner = majority_answer([records[i].answer for i in idx])
        if winner is not None:
            right += any(records[i].is_correct and records[i].answer == winner for i in idx)
        if len(idx) == 1:
            continue
        keep = None
        if winner is not None:
            keep = min((i for i in idx if records[i].answer == winner), key=lambda i: (generated[i], i))
        for i in idx:
            if i != keep:
                kept[i] = min(STOPPED_TOKENS, generated[i])
    return float(1 - kept.sum() / generated.sum()), right / len(groups), len(groups)


def shares_by_split(records: Sequence[GenerationRecord]) -> dict[str, float]:
    """{split: share correct} when the records carry ``meta["split"]`` ({} when none does). Raises ValueError
    naming the record when only some do."""
    has = ["split" in r.meta for r in records]
    if not any(has):
        return {}
    by: dict[str, list[bool]] = {}
    for i, r in enumerate(records):
        if not has[i]:
            raise ValueError(f"record {i}: meta has no 'split' while other records have it")
        by.setdefault(str(r.meta["split"]), []).append(r.is_correct)
    return {s: float(np.mean(v)) for s, v in by.items()}


def world_bounds(records: Sequence[GenerationRecord], tokenizer, logprobs: Sequence[TokenLogprobs] | None = None,
                 step_sep: str | None = STEP_SEP, window: int = 16, tail: int = 16) -> WorldBounds:
    """All five facts for `records` (n GenerationRecords, see the module docstring for the meta they need).

    tokenizer: the policy's (a fast tokenizer: first errors are mapped through its character offsets);
    logprobs: n `TokenLogprobs` (`policy_logprobs` or `record_logprobs`), or None to leave fact 3 out;
    step_sep: the text ending a step (the toy world's ';'), None to stop at the first wrong step's first token;
    window, tail: DeepConf's group window and tail length in tokens."""
    if not records:
        raise ValueError("world_bounds: no records")
    if logprobs is not None and len(logprobs) != len(records):
        raise ValueError(f"world_bounds: {len(records)} records but {len(logprobs)} log-probability arrays")
    response, generated = generated_tokens(records, tokenizer)
    correct = np.array([r.is_correct for r in records], dtype=bool)
    chars = first_error_chars(records)
    positions = saving = None
    if chars is not None:
        positions = first_error_positions(records, tokenizer, chars, response)
        saving = first_error_oracle_saving(records, tokenizer, chars, generated, step_sep)
    aurocs = None
    if logprobs is not None:
        scores = confidence_scores(logprobs, window, tail)
        aurocs = {name: auroc(scores[name], correct) for name in CONFIDENCE_SCORES}
    vote_saving, vote_accuracy, n_questions = vote_oracle(records, generated)
    return WorldBounds(
        n_samples=len(records), n_questions=n_questions, share_correct=float(correct.mean()),
        share_correct_by_split=shares_by_split(records), first_error=positions, confidence_auroc=aurocs,
        tokens_generated=int(generated.sum()), first_error_oracle_saving=saving, vote_accuracy=vote_accuracy,
        vote_oracle_saving=vote_saving,
        settings={"window": window, "tail": tail, "step_sep": step_sep, "stopped_tokens": STOPPED_TOKENS})
