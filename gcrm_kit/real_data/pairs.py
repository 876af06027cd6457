"""Adapters that read preference pairs: `openmathinstruct` (a correct and an incorrect solution of the same question,
as the paper pairs OpenMathInstruct-1), `hh_rlhf` (Anthropic HH-RLHF dialogues split at their shared prefix) and
`pairs` (prompt / chosen / rejected columns).

Each takes (rows from `load_rows`, the DatasetSpec) and returns an `Adapted` list of `PreferencePair`s. A missing,
null or non-string field is a DataError naming the file, row and key (see `rows`); rows that cannot make a pair
are left out and counted by reason in the list's `stats`.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ..data import DataError, GenerationRecord, PreferencePair
from .loading import require_columns
from .records import read_openmathinstruct
from .rows import Adapted, Rows


def pair_records(records: list[GenerationRecord], seed: int = 0, max_pairs_per_question: int = 1
                 ) -> tuple[list[PreferencePair], dict]:
    """(correct, incorrect) pairs of solutions to the same prompt, as the paper pairs OpenMathInstruct-1: up to
    `max_pairs_per_question` per prompt, drawn without repeating a solution. Returns pairs and counts by outcome."""
    rng = np.random.default_rng([seed, 5])
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    stats = Counter(questions=len(by_q))
    pairs = []
    for prompt, rs in by_q.items():
        good = sorted({r.response for r in rs if r.is_correct})
        bad = sorted({r.response for r in rs if not r.is_correct})
        if not good or not bad:
            stats["all_correct" if good else "all_incorrect"] += 1
            continue
        k = min(max_pairs_per_question, len(good), len(bad))
        for g, b in zip(rng.permutation(len(good))[:k], rng.permutation(len(bad))[:k]):
            pairs.append(PreferencePair(prompt, good[g], bad[b], meta={"messages": [{"role": "user",
                                                                                     "content": prompt}]}))
        stats["paired"] += 1
    return pairs, dict(stats)


def openmathinstruct_pairs(ds, spec) -> Adapted:
    """OpenMathInstruct-1 rows (see `openmathinstruct_records`) -> one (correct, incorrect) pair per question that
    has both (`pair_records`; its counts in `stats`). Empty solutions are left out of the pairing and counted."""
    rows = Rows(ds, spec)
    pairs, counts = pair_records(read_openmathinstruct(rows, skip_empty=True))
    return rows.result(pairs, counts)


HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def split_dialogue(text: str) -> list[dict]:
    """An HH-RLHF dialogue "\\n\\nHuman: ...\\n\\nAssistant: ..." -> chat messages [{"role", "content"}, ...]."""
    parts = re.split(r"\n\n(Human|Assistant):", text)
    msgs = []
    for role, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return msgs


def _split_or_reason(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """`split_shared_prefix`'s split, or why there is none (a reason rows are counted under)."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    if n == len(chosen) == len(rejected):
        return "identical dialogues"
    cut = chosen.rfind(ASSISTANT, 0, n)  # the last assistant turn that starts inside the shared prefix
    if cut < 0:
        return "no shared assistant turn"
    cut += len(ASSISTANT)
    c, r = chosen[cut:], rejected[cut:]
    if not c.strip() or not r.strip() or c == r:
        return "empty final response"
    return chosen[:cut], c, r


def split_shared_prefix(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Split two HH-RLHF dialogues into (prompt, chosen response, rejected response): the prompt is their shared
    prefix up to and including the last "\\n\\nAssistant:" inside it, so each response is the final assistant turn
    where the two differ. None when the dialogues share no assistant turn start or end up identical."""
    split = _split_or_reason(chosen, rejected)
    return None if isinstance(split, str) else split


def hh_rlhf_pairs(ds, spec) -> Adapted:
    """Anthropic HH-RLHF rows (chosen, rejected dialogues) -> pairs whose prompt is the shared dialogue prefix.
    Rows that cannot be split (identical dialogues, no shared assistant turn, an empty final response) are left out
    and counted by reason in the returned list's `stats` (not in any pair, so the count never travels with one into
    a split); a null or non-string dialogue is an error."""
    require_columns(ds, ["chosen", "rejected"], spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        split = _split_or_reason(row.text("chosen"), row.text("rejected"))
        if isinstance(split, str):
            row.skip(split)
            continue
        prompt, c, r = split
        out.append(PreferencePair(prompt, c, r, meta={"messages": split_dialogue(prompt[:-len(ASSISTANT)])}))
    if not out:
        raise DataError(f"{spec.source}: no HH-RLHF row could be split into prompt and responses "
                        f"({rows.describe()})")
    return rows.result(out)


def generic_pairs(ds, spec) -> Adapted:
    """Rows (prompt, chosen, rejected), all strings -> pairs. Empty sides are kept (screening counts them as "empty
    response"); a missing, null or non-string one is an error."""
    require_columns(ds, ["prompt", "chosen", "rejected"], spec)
    rows = Rows(ds, spec)
    return rows.result([PreferencePair(r.text("prompt"), r.text("chosen"), r.text("rejected")) for r in rows])
