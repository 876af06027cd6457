"""The policy's own confidence in its samples: per-token log-probabilities and the trace scores built from them.

Two sources give the same per-record arrays (`TokenLogprobs`):

- `policy_logprobs`: one forward pass of a causal LM per batch over the kit's sequence format
  (``BOS + prompt + response + EOS``, `gcrm_kit.data.encode`); the response tokens and the EOS are scored, since
  the model generated the EOS too (a sample cut at the token limit never did: pass ``eos=False`` for it);
- `record_logprobs`: the log-probabilities an inference engine wrote beside each sample (``meta["token_logprobs"]``
  and ``meta["top_logprobs"]``, one entry per generated token, as vLLM writes them), so that generations from
  another engine need no policy at hand.

Trace scores (`confidence_scores`): the mean and the lowest log-probability of the sampled tokens, and DeepConf's
confidences (Fu, Wang, Tian & Zhao 2025, "Deep Think with Confidence", arXiv:2508.15260, section 2): the token
confidence is the negative mean log-probability of the top-k candidates at a position,
``C_i = -(1/k) * sum_{j<=k} log P_i(j)``, high where the distribution is peaked (the top candidate takes nearly all
the mass, so the others' log-probabilities are very negative); the group confidence is the mean of C_i over a
sliding window of adjacent tokens; the lowest group confidence of a trace is the minimum over its windows, and the
tail confidence the mean C_i over its last tokens. The paper uses windows and tails of 2048 tokens on long
reasoning traces; the defaults here (16) suit the toy world's solutions of a few dozen tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .data import Encoded, GenerationRecord, encode, pad_batch


@dataclass
class TokenLogprobs:
    """Log-probabilities of one sampled response, n = its scored tokens (response tokens, plus the EOS if any).

    sampled: (n,) log-probability of the token that was sampled at each position; top: (n, k) the k highest
    log-probabilities of the candidates at each position, sorted in descending order."""

    sampled: np.ndarray
    top: np.ndarray


@torch.no_grad()
def policy_logprobs(policy, tokenizer, prompts: Sequence[str], responses: Sequence[str], k: int = 20,
                    batch_size: int = 16, eos: Sequence[bool] | None = None) -> list[TokenLogprobs]:
    """Score each response under the causal LM `policy` in the kit's format, one forward pass per batch.

    prompts, responses: n texts each; eos: per record whether its sequence ends with the EOS the model generated
    (default all True; False for a sample cut at the token limit, whose EOS is then neither added nor scored).
    k: top candidates kept per position (at most the vocabulary). Runs on the policy's device, in eval mode (its
    training mode is restored afterwards); padding goes on the right, so no real token's position moves.
    Returns n `TokenLogprobs`, each with ``len(response tokens) + eos`` positions.
    Raises ValueError for unequal lengths, an empty response, or a sequence with nothing before its response
    (no BOS and an empty prompt: its first token has no context to be predicted from)."""
    n = len(prompts)
    if len(responses) != n:
        raise ValueError(f"policy_logprobs: {n} prompts but {len(responses)} responses")
    eos = [True] * n if eos is None else [bool(e) for e in eos]
    if len(eos) != n:
        raise ValueError(f"policy_logprobs: {n} prompts but {len(eos)} eos flags")
    device = next(policy.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    training = policy.training
    policy.eval()
    out: list[TokenLogprobs] = []
    try:
        for start in range(0, n, batch_size):
            seqs = []
            for i in range(start, min(start + batch_size, n)):
                try:
                    enc = encode(tokenizer, prompts[i], responses[i])
                except ValueError as e:
                    raise ValueError(f"policy_logprobs: record {i}: {e}") from None
                if enc.response_start < 1:
                    raise ValueError(f"policy_logprobs: record {i}: nothing precedes the response (no BOS token and "
                                     "an empty prompt), so its first token cannot be scored")
                seqs.append(enc if eos[i] else Encoded(enc.input_ids[:-1], enc.response_start))
            batch = pad_batch(seqs, pad, "right")
            logits = policy(input_ids=batch["input_ids"].to(device),
                            attention_mask=batch["attention_mask"].to(device)).logits
            for b, enc in enumerate(seqs):
                # the logits at position t predict token t + 1: the response is predicted from response_start - 1 on
                first, length = enc.response_start - 1, len(enc.input_ids) - enc.response_start
                logp = torch.log_softmax(logits[b, first:first + length].float(), dim=-1)  # (length, V)
                target = torch.tensor(enc.input_ids[enc.response_start:], device=logp.device)
                sampled = logp.gather(-1, target[:, None]).squeeze(-1)
                top = logp.topk(min(k, logp.shape[-1]), dim=-1).values
                out.append(TokenLogprobs(sampled.cpu().numpy(), top.cpu().numpy()))
    finally:
        policy.train(training)
    return out


def _top_values(entry, where: str) -> list[float]:
    """One position's top candidates as a list of log-probabilities, from any of the shapes engines write: a dict
    token -> log-probability (vLLM, OpenAI completions), a list of numbers, or a list of {"logprob": x} objects
    (OpenAI chat)."""
    if isinstance(entry, dict):
        return list(entry.values())
    if isinstance(entry, (list, tuple)):
        return [e["logprob"] if isinstance(e, dict) and "logprob" in e else e for e in entry]
    raise ValueError(f"{where}: expected a dict token -> log-probability or a list, got {type(entry).__name__}")


def _check_logprob(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        raise ValueError(f"{where}: expected a log-probability (a number), got {x!r}")
    if x > 1e-6:
        raise ValueError(f"{where}: {x!r} is above 0, so not a log-probability (probabilities given instead?)")
    return float(x)


def record_logprobs(records: Sequence[GenerationRecord], k: int = 20, token_key: str = "token_logprobs",
                    top_key: str = "top_logprobs") -> list[TokenLogprobs]:
    """Read each record's log-probabilities from its meta: ``meta[token_key]`` a list of numbers (the sampled
    token's log-probability at each generated position) and ``meta[top_key]`` a list of the same length, per
    position the candidates' log-probabilities (see `_top_values` for the shapes read). The k highest per position
    are kept (an engine may add the sampled token to its top-k list, giving k + 1 entries).

    Returns one `TokenLogprobs` per record. Raises ValueError naming the record index and key when a key is
    missing, the lists differ in length or are empty, a position has fewer than k candidates, or a value is not a
    log-probability."""
    out = []
    for i, r in enumerate(records):
        for key in (token_key, top_key):
            if key not in r.meta:
                raise ValueError(f"record {i}: meta has no {key!r} (the engine's per-token log-probabilities; "
                                 "compute them with gcrm_kit.confidence.policy_logprobs instead)")
            if not isinstance(r.meta[key], (list, tuple)) or not r.meta[key]:
                raise ValueError(f"record {i}: meta {key!r} must be a non-empty list with one entry per generated "
                                 f"token, got {r.meta[key]!r:.80}")
        sampled, tops = r.meta[token_key], r.meta[top_key]
        if len(sampled) != len(tops):
            raise ValueError(f"record {i}: meta {token_key!r} has {len(sampled)} tokens but {top_key!r} has "
                             f"{len(tops)}")
        s = [_check_logprob(x, f"record {i}: meta {token_key!r}[{j}]") for j, x in enumerate(sampled)]
        rows = []
        for j, entry in enumerate(tops):
            where = f"record {i}: meta {top_key!r}[{j}]"
            values = [_check_logprob(x, where) for x in _top_values(entry, where)]
            if len(values) < k:
                raise ValueError(f"{where}: {len(values)} candidates, fewer than k={k}; pass the k the engine "
                                 "was asked for")
            rows.append(sorted(values, reverse=True)[:k])
        out.append(TokenLogprobs(np.asarray(s, dtype=float), np.asarray(rows, dtype=float)))
    return out


def token_confidence(top: np.ndarray) -> np.ndarray:
    """DeepConf's token confidence C_i = -(mean of the top-k log-probabilities at position i): (n, k) -> (n,)."""
    return -np.asarray(top, dtype=float).mean(axis=1)


def group_confidences(conf: np.ndarray, window: int) -> np.ndarray:
    """Mean token confidence over every window of `window` adjacent tokens: (n,) -> (n - window + 1,); a trace
    shorter than the window is one group over all its tokens, (1,)."""
    conf = np.asarray(conf, dtype=float)
    if len(conf) == 0:
        raise ValueError("group_confidences: no tokens")
    if window < 1:
        raise ValueError(f"group_confidences: window must be at least 1, got {window}")
    if len(conf) <= window:
        return np.array([conf.mean()])
    sums = np.convolve(conf, np.ones(window), mode="valid")
    return sums / window


def tail_confidence(conf: np.ndarray, tail: int) -> float:
    """Mean token confidence over the last `tail` tokens (all of them in a shorter trace)."""
    conf = np.asarray(conf, dtype=float)
    if len(conf) == 0 or tail < 1:
        raise ValueError(f"tail_confidence: needs tokens and tail >= 1 (got {len(conf)} tokens, tail {tail})")
    return float(conf[-tail:].mean())


#: the trace scores `confidence_scores` returns, each higher for a sample the policy is surer of
CONFIDENCE_SCORES = ("mean_logprob", "min_logprob", "lowest_group_confidence", "tail_confidence")


def confidence_scores(logprobs: Sequence[TokenLogprobs], window: int = 16, tail: int = 16) -> dict[str, np.ndarray]:
    """Per-trace scores from n records' log-probabilities: {name: (n,)} for each name in `CONFIDENCE_SCORES`:
    the mean and the lowest log-probability of the sampled tokens, DeepConf's lowest group confidence (windows of
    `window` tokens) and tail confidence (last `tail` tokens). Raises ValueError naming a record with no tokens."""
    out = {name: np.zeros(len(logprobs)) for name in CONFIDENCE_SCORES}
    for i, lp in enumerate(logprobs):
        if len(lp.sampled) == 0 or len(lp.top) == 0:
            raise ValueError(f"confidence_scores: record {i} has no scored tokens")
        conf = token_confidence(lp.top)
        out["mean_logprob"][i] = float(np.mean(lp.sampled))
        out["min_logprob"][i] = float(np.min(lp.sampled))
        out["lowest_group_confidence"][i] = float(group_confidences(conf, window).min())
        out["tail_confidence"][i] = tail_confidence(conf, tail)
    return out
