"""Valid inputs of notebook 01, and the counts of what is left out.

Training keeps a pair only when `data.encode_pairs` does: both sides non-empty, chosen != rejected, and neither
side longer than training.max_length tokens. The same rules apply to everything that is scored afterwards
(held-out pairs, evaluation records, the prototype's pairs), so nothing is scored that training would refuse
and nothing raises a bare "empty response" after hours of training. Everything left out is counted by reason.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from ..data import GenerationRecord, PreferencePair, SkipReport, check_tokenizer, encode, encode_pairs
from ..models import set_pad_token
from ..params import RMTrainingParams


def screen_pairs(tokenizer, pairs: list[PreferencePair], max_length: int | None
                 ) -> tuple[list[dict], list[PreferencePair], SkipReport]:
    """`encode_pairs`'s rules, pair by pair: (encodings of the kept pairs, the kept pairs, counts by reason).
    `max_length` None checks no length. The encodings equal what `encode_pairs` gives for the kept pairs."""
    check_tokenizer(tokenizer)
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
