"""Sample sets: the N solutions of each question of one set (validation or test), grouped by question and coded
as the arrays voting, pruning and scoring need (`SampleSet`, `make_sample_set`), and their summary.

Sequences are ``BOS + prompt + response`` plus an EOS only for samples that finished (meta ``finished``; a record
without it counts as finished): a sample cut at `max_new_tokens` never generated an EOS, so it is neither scored
nor counted nor pruned there, exactly as online generation sees it, and its final reward is read at its last token.
Votes: a sample votes for its `answer` (None: no answer could be extracted, no vote).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import GenerationRecord
from ..qvalues import response_token_index


@dataclass
class SampleSet:
    """The samples of one set of questions, grouped by question, as the arrays voting needs.

    S samples, Q questions; records are ordered by question. answer: code of the sample's answer among its
    question's distinct answers (-1: no answer); group_correct (Q, A): whether answer code a of question q is
    right; length: response tokens plus the final EOS of a finished sample (what generating the sample costs; an
    unfinished sample has no EOS, see `ends_with_eos`); first_error_token: the response token index holding the
    verifier's first wrong step (meta ``first_error_char``, a character offset, mapped through the tokenizer's
    offsets), -1 when there is none."""

    name: str
    records: list[GenerationRecord]
    prompts: list[str]
    question: np.ndarray
    answer: np.ndarray
    correct: np.ndarray
    length: np.ndarray
    group_correct: np.ndarray
    answers: list[list[str]]
    """per question, the answer string of each code"""
    first_error_token: np.ndarray | None = None

    @property
    def n_questions(self) -> int:
        return len(self.prompts)

    @property
    def uids(self) -> np.ndarray:
        return np.array([int(r.meta.get("uid", i)) for i, r in enumerate(self.records)])


def ends_with_eos(r: GenerationRecord) -> bool:
    """Whether the sample's sequence ends with an EOS: it finished, per meta ``finished`` (False: generation was cut
    at the token limit). A record without ``finished`` counts as finished: a file of generation records holds
    complete solutions unless it says otherwise."""
    fin = r.meta.get("finished", True)
    if not isinstance(fin, bool):
        raise ValueError(f"meta 'finished' must be true or false, got {fin!r} (record {r.meta.get('uid')})")
    return fin


def make_sample_set(name: str, records: list[GenerationRecord], tokenizer, source: str = "") -> SampleSet:
    """Group `records` by prompt (first-appearance order) and code their answers. Lengths are counted with
    `tokenizer` (response tokens, plus the EOS of a finished sample).

    A record whose answer is None casts no vote (no answer could be extracted) and must be incorrect. Raises
    ValueError naming `source` (the file or sampler they came from) when a correct record has no answer or when
    no record has an answer at all: every vote would then score 0."""
    where = f"{source}: " if source else ""
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    recs, question, answer, answers = [], [], [], []
    for qi, (prompt, rs) in enumerate(by_q.items()):
        codes: dict[str, int] = {}
        for r in rs:
            recs.append(r)
            question.append(qi)
            if r.answer is None or r.answer == "":
                if r.is_correct:
                    raise ValueError(f"{where}{name} record uid {r.meta.get('uid', len(recs) - 1)} (prompt {prompt!r}) "
                                     "is correct but has no answer: a vote cannot credit it; give its answer")
                answer.append(-1)
            else:
                answer.append(codes.setdefault(r.answer, len(codes)))
        answers.append(list(codes))
    if recs and all(a < 0 for a in answer):
        raise ValueError(f"{where}none of the {len(recs)} {name} records has an answer: majority voting needs each "
                         "sample's final answer (field 'answer'; null only where none could be extracted)")
    question, answer = np.array(question, dtype=int), np.array(answer, dtype=int)
    correct = np.array([r.is_correct for r in recs], dtype=bool)
    A = max(1, max((len(a) for a in answers), default=1))
    group_correct = np.zeros((len(by_q), A), dtype=bool)
    has = answer >= 0
    np.logical_or.at(group_correct, (question[has], answer[has]), correct[has])
    length = np.array([len(tokenizer(r.response, add_special_tokens=False)["input_ids"]) + int(ends_with_eos(r))
                       for r in recs], dtype=int)
    if len(length) and length.min() < 1:
        i = int(length.argmin())
        raise ValueError(f"{where}{name} record uid {recs[i].meta.get('uid', i)} is unfinished and empty: no token "
                         "to score")
    first_error = np.full(len(recs), -1, dtype=int)
    for i, r in enumerate(recs):
        j = response_token_index(tokenizer, r.response, r.meta.get("first_error_char"))
        if j is not None:
            first_error[i] = j
    return SampleSet(name, recs, list(by_q), question, answer, correct, length, group_correct, answers, first_error)


def sample_summary(samples: dict[str, SampleSet]) -> dict:
    """Questions, samples, share of correct samples, share of samples cut at the token limit (no EOS) and mean
    response length (tokens, with the EOS of finished samples) per set."""
    return {s: {"questions": ss.n_questions, "samples": len(ss.records), "share_correct": float(ss.correct.mean()),
                "share_unfinished": float(np.mean([not ends_with_eos(r) for r in ss.records])),
                "mean_length": float(ss.length.mean())} for s, ss in samples.items()}
