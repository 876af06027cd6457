"""The kit's data schema, JSONL I/O with clear errors, tokenisation with a response mask, and collators.

Two record kinds cover every experiment:

- `PreferencePair`: one prompt, a preferred (`chosen`) and a dispreferred (`rejected`) response;
- `GenerationRecord`: one prompt, one sampled response, and whether it is correct.

One sequence format is used everywhere (training, prototypes, scoring), so representations are always compared
across identical layouts: ``BOS + prompt + response + EOS``. The response mask marks the response tokens and
the final EOS: the states the contrastive term may sample and the Q-value curves run over. The reward is read
at the EOS, the last non-pad token.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import torch

from .io import atomic_write_text


@dataclass
class PreferencePair:
    """A prompt with a preferred and a dispreferred response."""

    prompt: str
    chosen: str
    rejected: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationRecord:
    """A prompt, one sampled response, and its correctness label (plus optional answer and metadata).

    answer: the final answer extracted from the response (None: none could be extracted; such a sample casts no
    vote). meta["finished"]: whether generation ended with EOS (False: cut at the token limit); a record without it
    counts as finished. In a JSONL file `question` may stand for `prompt` and `solution` for `response`."""

    prompt: str
    response: str
    is_correct: bool
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class DataError(ValueError):
    """Bad input data; the message names the file, line and key."""


def save_jsonl(records: Iterable[Any], path: str | Path) -> Path:
    """Write dataclass records as JSON lines, atomically. Returns the path."""
    text = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records)
    return atomic_write_text(path, text)


#: Other names a JSONL file may use for a field, per record kind: a file of generation records in the form
#: (question, solution, answer, is_correct) reads as (prompt, response, answer, is_correct).
ALIASES: dict[type, dict[str, str]] = {GenerationRecord: {"question": "prompt", "solution": "response"}}


def load_jsonl(path: str | Path, kind: type, require: Iterable[str] = ()) -> list:
    """Read `kind` records (PreferencePair or GenerationRecord) from a JSONL file.

    A GenerationRecord line may name `prompt` `question` and `response` `solution` (`ALIASES`), not both names of
    one field. `require`: optional fields that must be present on every line too (a null value still counts as
    present), e.g. ``("answer",)`` where a missing key would otherwise read as "no answer".

    Raises DataError naming the file and line for unreadable JSON, a missing or mistyped field, or an unknown
    key; an empty file is an error too (a silent empty dataset would train nothing).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    names = {f.name: f for f in fields(kind)}
    aliases = ALIASES.get(kind, {})
    required = [f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING]
    required += [k for k in require if k not in required]
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for alias, name in aliases.items():
                if alias in obj:
                    if name in obj:
                        raise DataError(f"{path}:{lineno}: both {name!r} and its alias {alias!r}; give one")
                    obj[name] = obj.pop(alias)
            unknown = sorted(set(obj) - set(names))
            if unknown:
                raise DataError(f"{path}:{lineno}: unknown key(s) {unknown} for {kind.__name__}")
            for key in required:
                if key not in obj:
                    also = [a for a, n in aliases.items() if n == key]
                    raise DataError(f"{path}:{lineno}: missing key {key!r}"
                                    + (f" (or {also[0]!r})" if also else "") + f" for {kind.__name__}")
            for key in ("prompt", "chosen", "rejected", "response"):
                if key in obj and not isinstance(obj[key], str):
                    raise DataError(f"{path}:{lineno}: key {key!r} must be a string")
            if "is_correct" in obj and not isinstance(obj["is_correct"], bool):
                raise DataError(f"{path}:{lineno}: key 'is_correct' must be true or false")
            if "answer" in obj and obj["answer"] is not None and not isinstance(obj["answer"], str):
                raise DataError(f"{path}:{lineno}: key 'answer' must be a string (null: no answer), got "
                                f"{type(obj['answer']).__name__} {obj['answer']!r}; write numbers as strings")
            if "meta" in obj and not isinstance(obj["meta"], dict):
                raise DataError(f"{path}:{lineno}: key 'meta' must be a JSON object, got "
                                f"{type(obj['meta']).__name__}")
            out.append(kind(**obj))
    if not out:
        raise DataError(f"{path}: no records")
    return out


def check_tokenizer(tokenizer) -> None:
    """The kit needs BOS/EOS and a pad token distinct from EOS (pooling reads the last non-pad token). A ValueError
    names the tokenizer's checkpoint (`name_or_path`) and the fix."""
    where = f"tokenizer of {getattr(tokenizer, 'name_or_path', '') or '(unnamed)'}"
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"{where} has no pad token: set one that is not the EOS token (params: model.pad_token, e.g. '<pad>'), "
            "since the reward is read at the last non-pad token"
        )
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(f"{where}: its pad token equals its EOS token: the EOS, where the reward is read, would be "
                         "taken for padding; give the tokenizer a separate pad token (params: model.pad_token)")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{where} has no EOS token")


@dataclass
class Encoded:
    """Token ids of BOS + prompt + response + EOS (EOS absent when `encode` left it out), and where the response
    (with EOS) starts."""

    input_ids: list[int]
    response_start: int

    @property
    def response_len(self) -> int:
        return len(self.input_ids) - self.response_start


def encode(tokenizer, prompt: str, response: str, eos: bool = True) -> Encoded:
    """Tokenise one (prompt, response) in the kit's single format. `eos` False leaves the final EOS out (BOS +
    prompt + response), so a reward read at the last token is read at the response's last token, as scorers that
    add no EOS read it. Raises ValueError on an empty response."""
    if not response:
        raise ValueError("empty response")
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return Encoded(bos + p + r + ([tokenizer.eos_token_id] if eos else []), len(bos) + len(p))


@dataclass
class SkipReport:
    """Counts of records left out, by reason; reported in metrics, never silent."""

    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"kept": self.kept, "skipped": dict(self.skipped)}


def encode_pairs(tokenizer, pairs: list[PreferencePair], max_length: int) -> tuple[list[dict], SkipReport]:
    """Encode pairs for reward-model training. Pairs with an empty side, identical sides, or a side longer
    than `max_length` tokens are skipped and counted (truncating would cut off the EOS the reward is read at)."""
    check_tokenizer(tokenizer)
    report, out = SkipReport(), []
    for pair in pairs:
        if not pair.chosen or not pair.rejected:
            report.skipped["empty response"] += 1
            continue
        if pair.chosen == pair.rejected:
            report.skipped["identical chosen and rejected"] += 1
            continue
        c, r = encode(tokenizer, pair.prompt, pair.chosen), encode(tokenizer, pair.prompt, pair.rejected)
        if max(len(c.input_ids), len(r.input_ids)) > max_length:
            report.skipped[f"longer than max_length={max_length}"] += 1
            continue
        out.append({"chosen": c, "rejected": r})
        report.kept += 1
    return out, report


def pad_ids(seqs: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists into (ids, attention_mask), both (B, T) long with T the longest; `side` "left" puts the
    padding first (as generation wants), "right" last."""
    T = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, x in enumerate(seqs):
        off = 0 if side == "right" else T - len(x)
        ids[i, off:off + len(x)] = torch.tensor(x, dtype=torch.long)
        att[i, off:off + len(x)] = 1
    return ids, att


def pad_batch(seqs: list[Encoded], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Pad encoded sequences into tensors.

    Returns input_ids, attention_mask, response_mask (1 on response tokens and EOS), all (B, T) long, and
    position_ids (B, T) counted over real tokens only, so a sequence's positions do not depend on padding side.
    """
    ids, att = pad_ids([s.input_ids for s in seqs], pad_id, side)
    T = ids.shape[1]
    resp = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        n = len(s.input_ids)
        off = 0 if side == "right" else T - n
        resp[i, off + s.response_start:off + n] = 1
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp, "position_ids": pos}


class PairCollator:
    """Collate encoded pairs into one batch of 2B sequences: the B chosen first, then the B rejected."""

    def __init__(self, pad_id: int, side: str = "right"):
        self.pad_id, self.side = pad_id, side

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        seqs = [it["chosen"] for it in items] + [it["rejected"] for it in items]
        return pad_batch(seqs, self.pad_id, self.side)


class LMCollator:
    """Collate encoded (prompt, response) examples for causal-LM fine-tuning with the loss on the response only
    (prompt and padding labels are -100)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[Encoded]) -> dict[str, torch.Tensor]:
        b = pad_batch(items, self.pad_id, "right")
        labels = b["input_ids"].masked_fill(b["response_mask"] == 0, -100)
        return {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"], "labels": labels}
