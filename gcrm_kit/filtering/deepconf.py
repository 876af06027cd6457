"""DeepConf (Fu, Wang, Tian & Zhao 2025, "Deep Think with Confidence", arXiv:2508.15260): the policy's own token
log-probabilities decide which samples vote (offline) and which stop early (online), with no scorer at all.

Confidences are `gcrm_kit.confidence`'s: the token confidence C_i (negative mean top-k log-probability), the group
confidence (mean C_i over a sliding window), a trace's lowest group confidence and its tail confidence.

- offline (`offline_spend`): every trace is generated; per question the eta% most confident traces are kept and
  vote, weighted by their confidence;
- online (`online_spend`), a replay on the full traces: per question the first `warmup` traces (in draw order) are
  generated in full and set the stopping threshold s, the (100 - eta)th percentile of their lowest group
  confidences; every later trace stops at the first token whose group confidence (the window ending there; a trace
  shorter than the window is judged at its last token) falls below s, having generated the tokens up to that one,
  and does not vote. The warm-up traces and the traces never stopped vote, weighted by their lowest group
  confidence. With a consensus threshold tau (the paper's adaptive sampling, tau = 0.95 there), a question stops
  drawing traces once the leading answer holds at least tau of the voting traces' weight, checked after the warm-up
  and after every later trace; traces never drawn cost nothing. The replay is exact: the tokens and
  log-probabilities of a trace up to its stop are those it had.
- online with `in_flight` k > 1: after the warm-up a question keeps k traces generating at once, as a parallel
  engine runs them, and starts its next trace whenever one ends. The replay keeps time in tokens (every running
  trace writes one token per step), checks the consensus whenever a trace ends, and stops the traces still running
  when it is reached: they have cost the tokens they wrote by then and do not vote. A shorter chain of draws per
  question, at the price of those unfinished traces; k = 1 is the algorithm as written.

Log-probabilities come from the records (an engine such as vLLM writes them: `confidence.record_logprobs`;
`file_logprobs` names the file, line and key of a record without them) or from one forward pass of the policy that
wrote the samples (`policy_confidences`). Positions are the engine's tokens; where a record has a different
number of them than the kit's tokenizer counts, a stop is mapped to the kit's tokens by its share of the response.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import torch

from ..confidence import TokenLogprobs, group_confidences, policy_logprobs, record_logprobs, token_confidence
from .cost import Spend
from .samples import SampleSet, ends_with_eos


def file_logprobs(path: str | Path, ss: SampleSet, k: int) -> list[TokenLogprobs]:
    """Each sample's log-probabilities from its record's meta (``token_logprobs``, ``top_logprobs``), the samples
    having been read from the JSONL file `path` (meta ``uid``: the record's index among the file's records).
    Raises ValueError naming the file, the line and the key of the first record without usable ones."""
    lines = [n for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    out = []
    for r in ss.records:
        try:
            out.append(record_logprobs([r], k)[0])
        except ValueError as e:
            uid = r.meta.get("uid")
            where = f"{path}:{lines[uid]}" if isinstance(uid, int) and 0 <= uid < len(lines) else f"{path}"
            raise ValueError(f"{where}: {str(e).removeprefix('record 0: ')}") from None
    return out


def policy_confidences(policy, tokenizer, ss: SampleSet, k: int, batch_size: int) -> list[np.ndarray]:
    """Each sample's token confidences under `policy` (the one that wrote them), a batch of forward passes at a
    time so that only the confidences are kept; a sample cut at the token limit is scored without an EOS. A sample
    whose response is empty generated one token, its EOS: its trace is that token's confidence."""
    out = []
    recs = ss.records
    for start in range(0, len(recs), batch_size):
        chunk = recs[start:start + batch_size]
        filled = [r for r in chunk if r.response]
        lps = iter(policy_logprobs(policy, tokenizer, [r.prompt for r in filled], [r.response for r in filled], k=k,
                                   batch_size=batch_size, eos=[ends_with_eos(r) for r in filled]) if filled else [])
        for r in chunk:
            out.append(token_confidence(next(lps).top) if r.response else eos_only_confidence(policy, tokenizer,
                                                                                              r.prompt, k))
    return out


@torch.no_grad()
def eos_only_confidence(policy, tokenizer, prompt: str, k: int) -> np.ndarray:
    """(1,): the token confidence of the EOS an empty response consists of, read after BOS + prompt."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    if not ids:
        raise ValueError("an empty response to an empty prompt without a BOS token has nothing to be read after")
    training = policy.training
    policy.eval()
    try:
        logits = policy(input_ids=torch.tensor([ids], device=next(policy.parameters()).device)).logits[0, -1]
    finally:
        policy.train(training)
    top = torch.log_softmax(logits.float(), dim=-1).topk(min(k, logits.shape[-1])).values
    return token_confidence(top.cpu().numpy()[None, :])


def trace_confidences(lps: list[TokenLogprobs]) -> list[np.ndarray]:
    """Per trace, its token confidences C_i, (n_i,)."""
    return [token_confidence(lp.top) for lp in lps]


def running_group_confidence(conf: np.ndarray, window: int) -> np.ndarray:
    """(n,) group confidence of the window ending at each token, NaN until the first full window (a trace of at most
    `window` tokens has one group, over all of them, at its last token)."""
    conf = np.asarray(conf, dtype=float)
    n = len(conf)
    out = np.full(n, np.nan)
    if n <= window:
        out[-1] = conf.mean()
        return out
    out[window - 1:] = np.convolve(conf, np.ones(window), mode="valid") / window
    return out


def lowest_group(confs: list[np.ndarray], window: int) -> np.ndarray:
    """(S,) each trace's lowest group confidence."""
    return np.array([group_confidences(c, window).min() for c in confs])


def tail(confs: list[np.ndarray], n: int) -> np.ndarray:
    """(S,) each trace's tail confidence (mean C_i over its last `n` tokens)."""
    return np.array([float(np.mean(c[-n:])) for c in confs])


def offline_spend(ss: SampleSet, score: np.ndarray, keep_percent: float) -> Spend:
    """Every trace generated in full; per question the ceil(eta% of its traces) with the highest `score` vote,
    weighted by that score (ties: the earlier sample first)."""
    kept = np.zeros(len(score), dtype=bool)
    for q in range(ss.n_questions):
        idx = np.flatnonzero(ss.question == q)
        n = max(1, int(np.ceil(keep_percent / 100 * len(idx) - 1e-9)))
        kept[idx[np.argsort(-score[idx], kind="stable")[:n]]] = True
    return Spend(np.ones(len(score), dtype=bool), ss.length.copy(), kept, weights=np.asarray(score, dtype=float))


def stop_position(conf: np.ndarray, window: int, threshold: float) -> int:
    """Index of the token at which a trace stops (its group confidence first below `threshold`), or -1."""
    g = running_group_confidence(conf, window)
    hit = np.flatnonzero(~np.isnan(g) & (g < threshold))
    return int(hit[0]) if len(hit) else -1


def consensus_reached(answers: np.ndarray, weights: np.ndarray, tau: float) -> bool:
    """Whether the leading answer holds at least `tau` of the total weight of the voting traces' `answers` (codes,
    -1: no answer, which does not vote) and `weights`; False while no trace with an answer has voted."""
    votes: dict[int, float] = {}
    for a, w in zip(answers.tolist(), weights.tolist()):
        if a >= 0:
            votes[a] = votes.get(a, 0.0) + float(w)
    total = sum(votes.values())
    return total > 0 and max(votes.values()) >= tau * total


def _stop_length(conf: np.ndarray, length: int, window: int, threshold: float) -> tuple[int, bool]:
    """(tokens a trace generates, whether its confidence stopped it): its `length` when it never stops; a stop at a
    record's own token positions is mapped to the kit's tokens by its share of the response (module docstring)."""
    t = stop_position(conf, window, threshold)
    if t < 0:
        return int(length), False
    return (t + 1 if len(conf) == length else int(np.ceil((t + 1) * length / len(conf)))), True


def online_spend(ss: SampleSet, confs: list[np.ndarray], orders: list[np.ndarray], keep_percent: float, warmup: int,
                 window: int, consensus: float | None = None, in_flight: int = 1) -> Spend:
    """The online replay (module docstring) over every question, traces drawn in `orders` (per question, sample
    indices in draw order); `consensus`: the consensus threshold tau, None for no consensus stop (every trace is
    drawn); `in_flight`: traces a question generates at once after its warm-up. Returns the spend; `weights` are
    the lowest group confidences."""
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    S = len(confs)
    low = lowest_group(confs, window)
    generated = ss.length.copy()
    kept = np.ones(S, dtype=bool)
    started = np.zeros(S, dtype=bool)
    for order in orders:
        warm, rest = list(order[:warmup]), list(order[warmup:])
        started[warm] = True
        threshold = float(np.percentile(low[warm], 100 - keep_percent))
        voting = list(warm)

        def reached() -> bool:
            return consensus is not None and consensus_reached(ss.answer[voting], low[voting], consensus)
        # time counts tokens from the end of the warm-up; running: (end time, draw position, sample, start time)
        now, running, nxt = 0, [], 0
        while not reached() and (nxt < len(rest) or running):
            while nxt < len(rest) and len(running) < in_flight:
                i = rest[nxt]
                started[i] = True
                n, stopped = _stop_length(confs[i], ss.length[i], window, threshold)
                kept[i], generated[i] = not stopped, n
                heapq.heappush(running, (now + n, nxt, i, now))
                nxt += 1
            now, _, i, _ = heapq.heappop(running)  # the next trace to end (the earlier drawn first on a tie)
            if kept[i]:
                voting.append(i)
        for _, _, i, start in running:  # cut by the consensus: what they wrote so far, no vote
            generated[i], kept[i] = now - start, False
            started[i] = generated[i] > 0
    return Spend(started, np.where(started, generated, 0), kept & started, weights=low)
