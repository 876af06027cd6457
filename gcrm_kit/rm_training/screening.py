"""Valid inputs of notebook 01, and the counts of what is left out.

Training keeps a pair only when `data.encode_pairs` does: both sides non-empty, chosen != rejected, and neither
side longer than training.max_length tokens. The same rules apply to everything that is scored afterwards
(held-out pairs, evaluation records, the prototype's pairs), so nothing is scored that training would refuse
and nothing raises a bare "empty response" after hours of training. Everything left out is counted by reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer

from ..data import GenerationRecord, PreferencePair, SkipReport, check_tokenizer, encode, encode_pairs
from ..models import set_pad_token
from ..params import RMTrainingParams


@dataclass
class ScreenedPairs:
    """Pairs that passed `screen_pairs`, with their encodings, kept so that training and the prototype reuse them
    instead of encoding the same pairs again (once per reward model). `tokenizer_key` (`tokenizer_key`) and
    `max_length` say what they were screened with; they are reused only for the same."""

    pairs: list[PreferencePair]
    encoded: list[dict]
    max_length: int | None
    tokenizer_key: str

    @classmethod
    def of(cls, tokenizer, kept: list[PreferencePair], encoded: list[dict], max_length: int | None
           ) -> "ScreenedPairs":
        return cls(list(kept), list(encoded), max_length, tokenizer_key(tokenizer))

    def reuse(self, tokenizer, pairs: list[PreferencePair], max_length: int | None
              ) -> tuple[list[dict], list[PreferencePair], SkipReport] | None:
        """`screen_pairs`'s answer for `pairs` when they are the first len(pairs) of these very pair objects (a
        data-size subset included), screened with the same max_length and an identical tokenizer; else None."""
        n = len(pairs)
        same_pairs = n <= len(self.pairs) and all(a is b for a, b in zip(pairs, self.pairs))
        if max_length != self.max_length or not same_pairs or tokenizer_key(tokenizer) != self.tokenizer_key:
            return None
        return self.encoded[:n], list(pairs), SkipReport(kept=n)


def tokenizer_key(tokenizer) -> str:
    """A digest of everything that decides `data.encode`'s ids: a fast tokenizer's definition (its JSON: normaliser,
    pre-tokeniser, model and vocabulary, added tokens; not the post-processor, padding, truncation or decoder, which
    `encode` does not use: a reward model's copy differs from the policy's only in its post-processor), else its
    vocabulary; and its BOS, EOS and pad ids."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        text = json.dumps({k: v for k, v in spec.items() if k not in _NOT_ENCODING}, sort_keys=True)
    else:
        text = repr(sorted(tokenizer.get_vocab().items()))
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, type(tokenizer).__name__)
    return hashlib.sha256((text + repr(ids)).encode()).hexdigest()


_NOT_ENCODING = ("post_processor", "padding", "truncation", "decoder")


def screen_pairs(tokenizer, pairs: list[PreferencePair], max_length: int | None,
                 screened: ScreenedPairs | None = None) -> tuple[list[dict], list[PreferencePair], SkipReport]:
    """`encode_pairs`'s rules, pair by pair: (encodings of the kept pairs, the kept pairs, counts by reason).
    `max_length` None checks no length. The encodings equal what `encode_pairs` gives for the kept pairs.
    `screened` (pairs screened before, e.g. `RMData.screened["train"]`) is reused when it holds these pairs
    (`ScreenedPairs.reuse`): nothing is encoded again."""
    check_tokenizer(tokenizer)
    again = screened.reuse(tokenizer, pairs, max_length) if screened is not None else None
    if again is not None:
        return again
    limit = max_length if max_length is not None else float("inf")
    report, enc, kept = SkipReport(), [], []
    for pair in pairs:
        e, r = encode_pairs(tokenizer, [pair], limit)
        report.kept += r.kept
        report.skipped.update(r.skipped)
        if e:
            enc.append(e[0])
            kept.append(pair)
    return enc, kept, report


def screen_records(tokenizer, records: list[GenerationRecord], max_length: int | None
                   ) -> tuple[list[GenerationRecord], list[int], SkipReport]:
    """Evaluation records that can be scored as training scores a pair's side: a non-empty response, and the
    sequence no longer than `max_length` tokens (None: any length). Returns (kept records, their indices in
    `records`, counts by reason; the reasons are worded as `encode_pairs` words them)."""
    report, kept, idx = SkipReport(), [], []
    for i, r in enumerate(records):
        if not r.response:
            report.skipped["empty response"] += 1
            continue
        if max_length is not None and len(encode(tokenizer, r.prompt, r.response).input_ids) > max_length:
            report.skipped[f"longer than max_length={max_length}"] += 1
            continue
        kept.append(r)
        idx.append(i)
        report.kept += 1
    return kept, idx, report


def screening_tokenizer(p: RMTrainingParams, policy_dir: str | Path):
    """The tokenizer reward models of `p` train with: the policy's, with the pad token `reward_model_from_policy`
    gives it (only a tokenizer without one distinct from EOS changes, unless model.pad_token names one)."""
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    set_pad_token(tokenizer, p.model.pad_token)
    return tokenizer


def count_skipped(counts: dict) -> int:
    """Sum of a possibly nested {reason: n} / {split: {reason: n}} dict."""
    return sum(count_skipped(v) if isinstance(v, dict) else int(v) for v in counts.values())


def describe_skips(skipped: dict) -> str:
    """One line per part of the data with anything left out, by reason; "nothing left out" when all is kept."""
    lines = []
    for part in ("source", "train", "heldout", "eval"):
        v = skipped.get(part) or {}
        groups = v.items() if part in ("eval", "source") else [(None, v)]
        for sub, counts in groups:
            if count_skipped(counts):
                name = part if sub is None else f"{part} {sub}"
                lines.append(f"{name}: {count_skipped(counts)} left out (" +
                             ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) + ")")
    return "\n".join(lines) if lines else "nothing left out"


def merge_skips(*parts: dict) -> dict:
    """Add skip-count dicts shaped like `world.screen_world`'s, key by key."""
    out: dict = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, dict):
                out[k] = merge_skips(out.get(k, {}), v)
            else:
                out[k] = out.get(k, 0) + v
    return out
