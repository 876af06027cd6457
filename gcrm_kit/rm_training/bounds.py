"""What bounds every filtering and steering method on notebook 01's world and policy (`gcrm_kit.bounds`), measured
on each evaluation split's sampled records (one sample per question): the share of correct samples, where the first
wrong step starts, how well the policy's own confidence tells right from wrong, and the token savings of the
first-error and vote-level oracles.

The policy's per-token log-probabilities come from one forward pass per batch (`confidence.policy_logprobs`), which
draws no random numbers, so this step changes nothing that follows it. On real data the step runs only when the
records carry an engine's log-probabilities (``meta["token_logprobs"]`` and ``meta["top_logprobs"]``) and question
ids; otherwise it is skipped with a note.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import pandas as pd
from transformers import AutoModelForCausalLM

from ..bounds import WorldBounds, world_bounds
from ..confidence import policy_logprobs, record_logprobs
from ..data import GenerationRecord, encode
from ..device import resolve_device
from ..params import RMTrainingParams
from .accelerator import release_accelerator_memory
from .screening import screening_tokenizer
from .world import RMData

#: the meta keys an engine's log-probabilities are read from (`confidence.record_logprobs`)
LOGPROB_KEYS = ("token_logprobs", "top_logprobs")


def finished_flags(records: Sequence[GenerationRecord], tokenizer, max_new_tokens: int) -> list[bool]:
    """Per record, whether its sample ended with the EOS the policy generated: ``meta["finished"]`` where a record
    says so, else whether its response is shorter than `max_new_tokens` tokens. Toy sampling stops only at the EOS
    or at the token limit and does not record which, so a response of exactly `max_new_tokens` tokens was cut there
    (its EOS would have been one token more)."""
    out = []
    for i, r in enumerate(records):
        if "finished" in r.meta:
            out.append(r.meta["finished"])  # its type is checked where it is used (bounds.generated_tokens)
            continue
        try:
            n = encode(tokenizer, r.prompt, r.response).response_len - 1
        except ValueError as e:
            raise ValueError(f"record {i}: {e}") from None
        out.append(n < max_new_tokens)
    return out


def _carries_logprobs(records: Sequence[GenerationRecord]) -> bool:
    return bool(records) and all(all(k in r.meta for k in (*LOGPROB_KEYS, "question_id")) for r in records)


def engine_top_k(records: Sequence[GenerationRecord]) -> int:
    """The fewest candidates any position of `records` lists in ``meta["top_logprobs"]`` (at least 1): an engine is
    asked for a fixed k, and some add the sampled token when it is not among them. Entries of another shape are
    left to `confidence.record_logprobs`, which names them."""
    sizes = [len(e) for r in records if isinstance(r.meta.get("top_logprobs"), (list, tuple))
             for e in r.meta["top_logprobs"] if isinstance(e, (dict, list, tuple))]
    return max(min(sizes, default=1), 1)


def world_bounds_of(p: RMTrainingParams, rm_data: RMData) -> dict[str, WorldBounds]:
    """The facts of `gcrm_kit.bounds` for every evaluation split of `rm_data` ({split: WorldBounds}), also kept in
    ``rm_data.world_bounds`` for metrics.json (`report.write_metrics`).

    Toy world: the policy at ``rm_data.policy_dir`` scores every record on ``resolve_device(p.device)`` in batches
    of ``p.evaluation.batch_size``; a sample cut at ``p.pairs.max_new_tokens`` (its sampling limit) is scored and
    counted without an EOS (`finished_flags`). Real data: the records' own log-probabilities are used
    (`engine_top_k` candidates per position) when every record of every split carries them and a question id;
    otherwise nothing is computed, a note says why, and {}
    is returned. A split with no records is left out."""
    splits = {s: recs for s, recs in rm_data.eval_records.items() if recs}
    out: dict[str, WorldBounds] = {}
    if p.data.kind != "toy":
        if not splits or not all(_carries_logprobs(recs) for recs in splits.values()):
            print("world bounds skipped: real-data records carry no per-token log-probabilities "
                  f"(meta {' and '.join(LOGPROB_KEYS)}) and question ids")
            return out
        tokenizer = screening_tokenizer(p, rm_data.policy_dir)
        for split, recs in splits.items():
            out[split] = world_bounds(recs, tokenizer, record_logprobs(recs, k=engine_top_k(recs)), step_sep=None)
    else:
        tokenizer = screening_tokenizer(p, rm_data.policy_dir)
        policy = AutoModelForCausalLM.from_pretrained(rm_data.policy_dir).to(resolve_device(p.device))
        for split, recs in splits.items():
            eos = finished_flags(recs, tokenizer, p.pairs.max_new_tokens)
            marked = [replace(r, meta={**r.meta, "finished": f}) for r, f in zip(recs, eos)]
            lps = policy_logprobs(policy, tokenizer, [r.prompt for r in recs], [r.response for r in recs],
                                  batch_size=p.evaluation.batch_size, eos=eos)
            out[split] = world_bounds(marked, tokenizer, lps)
        del policy
        release_accelerator_memory()
    rm_data.world_bounds = out
    return out


def world_bounds_table(bounds: dict[str, WorldBounds]) -> pd.DataFrame:
    """One row per fact, and per split its value and the samples or questions it is over (columns (split,
    "value") and (split, "n")). The per-split share rows are left out: each split's records are one split, so that
    share is the first row's."""
    if not bounds:
        return pd.DataFrame()
    tables = {}
    for split, b in bounds.items():
        t = b.bounds_table()
        tables[split] = t[~t["fact"].str.startswith("share correct (")].set_index("fact")
    return pd.concat(tables, axis=1)
