"""Online pruning in one decoding loop whose cost follows the FLOP model (`cost.py`): the policy decodes token by
token from its own key/value cache for the whole generation, the scorer reads the new tokens from its own cache only
at scoring points (every k tokens, or when a sample ends a reasoning step), and rows that are pruned or finish leave
both caches by index selection (`DynamicCache.batch_select_indices`), so nothing is re-padded or re-encoded
(`decode_pruned`).

Compared with `decoding.generate_pruned` (one `generate` call per chunk): the same per-sample noise
(`PerSampleGumbel`), so with pruning off the samples are token for token those of `generate_pruned` (the kit's
sampler, `sampling.sample_toy`); the same pruning rule (`first_below` on every token read); a finished sample leaves
the policy's batch at once instead of at the end of its chunk, and waits in the scorer's batch (its last tokens
still to be read) until the next scoring point.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from ..data import pad_ids
from .decoding import PrunedGeneration, _sync, decode_setup
from .pruning import first_below


class _Rows:
    """The input indices of the rows in one batch (policy or scorer), in batch order."""

    def __init__(self, rows: list[int]):
        self.rows = list(rows)

    def keep(self, drop: set[int]) -> torch.Tensor | None:
        """Drop the input indices in `drop`; returns the batch positions kept (None: nothing dropped)."""
        pos = [j for j, i in enumerate(self.rows) if i not in drop]
        if len(pos) == len(self.rows):
            return None
        self.rows = [self.rows[j] for j in pos]
        return torch.tensor(pos, dtype=torch.long)


class PolicyStepper:
    """The policy decoding one token per row per call from its own key/value cache, kept for the whole generation.

    `start` reads the left-padded prompts (B, T0) and returns the next-token logits (B, V); `step` feeds each
    row's new token (B,) and returns the next logits; `select` keeps rows `idx` of the cache and mask (index
    selection: nothing is re-padded or re-encoded). Positions follow the attention mask, as in `generate`."""

    def __init__(self, policy):
        self.policy, self.device = policy, policy.device
        self.cache = None
        self.att: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = self.policy(input_ids=ids, attention_mask=self.att, position_ids=pos, past_key_values=self.cache,
                          use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()

    def start(self, ids: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        self.cache, self.att = DynamicCache(config=self.policy.config), att.to(self.device)
        pos = (self.att.long().cumsum(-1) - 1).masked_fill(self.att == 0, 0)
        return self._forward(ids.to(self.device), pos)

    def step(self, tok: torch.Tensor) -> torch.Tensor:
        self.att = torch.cat([self.att, self.att.new_ones((len(tok), 1))], 1)
        return self._forward(tok.to(self.device)[:, None], self.att.long().sum(-1, keepdim=True) - 1)

    def select(self, idx: torch.Tensor) -> None:
        idx = idx.to(self.device)
        self.cache.batch_select_indices(idx)
        self.att = self.att[idx]


def _read_now(since: int, score_every: int, boundary: bool, last: bool, policy_empty: bool) -> bool:
    # a scoring point: the k-th token since the last read, a step just ended (boundary), the token budget is spent, or
    # no row is left to decode (finished rows wait in the scorer's batch only until then)
    return since > 0 and (last or policy_empty or boundary or (score_every > 0 and since >= score_every))


@torch.no_grad()
def decode_pruned(
    policy,
    tokenizer,
    prompts: list[str],
    uids: list[int],
    scorer=None,
    threshold: float = float("-inf"),
    skip_tokens: int = 5,
    score_every: int = 8,
    score_at: str | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
    suppress_tokens: list[str] | None = None,
    desc: str = "decoding",
) -> PrunedGeneration:
    """Sample one response per (prompt, uid) and stop samples whose score falls below `threshold`, in one cached
    decoding loop per batch of `batch_size` rows.

    The scorer (`scorers.RewardModelScorer` or `CutScorer`: `start`, `step`, `select`) reads the tokens generated
    since its last read at scoring points: every `score_every` tokens, and, with `score_at` (a token string, e.g.
    the toy world's step separator ";"), also whenever a live sample has just generated that token; `score_every` 0
    with `score_at` scores at step boundaries only. Whatever happens, every token is read once and before its
    sample leaves. A sample is pruned at the first response token t >= `skip_tokens` whose score is below
    `threshold` (`first_below`, as offline) and stops at the scoring point that read t. Returns `PrunedGeneration`
    (its fields as `generate_pruned` fills them); temperature 0 is greedy.
    """
    if score_every < 0 or (score_every == 0 and score_at is None and scorer is not None):
        raise ValueError(f"score_every={score_every}: expected a positive number of tokens between scoring points, "
                         "or 0 together with score_at (a step separator)")
    ds = decode_setup(policy, tokenizer, suppress_tokens, seed, temperature)
    device, eos, pad, sampler, bad_t = ds.device, ds.eos, ds.pad, ds.sampler, ds.bad_t
    sep = None
    if score_at is not None:
        sep = tokenizer.convert_tokens_to_ids(score_at)
        if sep is None or sep == tokenizer.unk_token_id:
            raise ValueError(f"score_at={score_at!r} is not one token of the tokenizer")
    n = len(prompts)
    resp: list[list[int]] = [[] for _ in range(n)]
    scores_out: list[list[float]] = [[] for _ in range(n)]
    finished, pruned_at = [False] * n, [-1] * n
    scorer_tokens0 = scorer.tokens_read if scorer is not None else 0
    order = sorted(range(n), key=lambda i: len(prompts[i]))  # little padding per batch; order restored by index
    _sync(device)
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False):
        rows = order[start:start + batch_size]
        _, ids, att = ds.encode(tokenizer, [prompts[i] for i in rows])
        pol, sc = _Rows(rows), _Rows(rows if scorer is not None else [])
        uid_t = torch.tensor([uids[i] for i in rows], dtype=torch.long, device=device)
        stepper = PolicyStepper(policy)
        if scorer is not None:
            scorer.start(ids, att, uid_t.cpu())
        logits = stepper.start(ids, att)
        read_upto = 0  # every row of the scorer's batch has been read up to this response index
        for t in range(max_new_tokens):
            if t:
                logits = stepper.step(tok)
            if bad_t is not None:
                logits = logits.index_fill(1, bad_t, float("-inf"))
            if sampler is not None:
                logits = sampler.noisy(logits, uid_t, t)
            tok = logits.argmax(-1)
            tok_c = tok.tolist()
            ended: set[int] = set()
            for i, k in zip(pol.rows, tok_c):
                resp[i].append(k)
                if k == eos:
                    ended.add(i)
            boundary = sep is not None and sep in tok_c
            last = t + 1 == max_new_tokens
            dropped: set[int] = set(ended)
            if scorer is not None and _read_now(t + 1 - read_upto, score_every, boundary, last,
                                                len(ended) == len(pol.rows)):
                dropped |= _read(scorer, sc, resp, scores_out, pruned_at, finished, read_upto, threshold,
                                 skip_tokens, pad, eos)
                read_upto = t + 1
            elif scorer is None:
                for i in ended:
                    finished[i] = True
            keep = pol.keep(dropped)
            if keep is not None:
                if not pol.rows:
                    break
                keep = keep.to(device)
                stepper.select(keep)
                tok, uid_t = tok[keep], uid_t[keep]
            if last:
                break
    _sync(device)
    seconds = time.perf_counter() - t0
    scorer_tokens = (scorer.tokens_read - scorer_tokens0) if scorer is not None else 0
    policy_tokens = sum(len(r) for r in resp)
    return PrunedGeneration(list(uids), resp, finished, pruned_at, scores_out, policy_tokens, scorer_tokens, seconds)


def _read(scorer, sc: _Rows, resp, scores_out, pruned_at, finished, offset: int, threshold: float, skip: int,
          pad: int, eos: int) -> set[int]:
    """The scorer reads every row's tokens from response index `offset` on (rows that ended earlier have fewer:
    right-padded and masked); pruned rows get `pruned_at`, ended ones `finished`; both leave the scorer's batch.
    Returns the input indices of the pruned rows."""
    new = [resp[i][offset:] for i in sc.rows]
    ids, mask = pad_ids(new, pad, side="right")
    s = scorer.step(ids, mask, offset)
    cut = first_below(s, mask, threshold, skip, offset).tolist()
    s_c = s.float().cpu()
    pruned, ended = set(), set()
    for j, (i, c) in enumerate(zip(sc.rows, cut)):
        scores_out[i].extend(s_c[j, :len(new[j])].tolist())
        if c >= 0:
            pruned_at[i] = int(c)
            pruned.add(i)
        elif resp[i][-1] == eos:
            finished[i] = True
            ended.add(i)
    keep = sc.keep(pruned | ended)
    if keep is not None and sc.rows:
        scorer.select(keep)
    return pruned
