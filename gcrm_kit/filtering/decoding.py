"""Online pruning: generating samples and stopping those whose score falls below a threshold while they are
being generated (PAPER.md section 4), with per-sample noise so that pruning never changes a kept sample."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, LogitsProcessorList

from ..data import pad_ids
from .noise import PerSampleGumbel
from .pruning import first_below


@dataclass
class PrunedGeneration:
    """What `generate_pruned` did, one entry per sample in input order.

    response_ids: the tokens generated for the sample (a pruned sample: everything generated before it was
    stopped, including the rest of the chunk in which its score fell); finished: it reached EOS; pruned_at: the
    response index whose score fell below the threshold, or -1; scores: per generated token (empty without a
    scorer). policy_tokens: tokens the policy generated in all; scorer_tokens: tokens the scorer read (prompts
    included); seconds: wall-clock of the whole call."""

    uids: list[int]
    response_ids: list[list[int]]
    finished: list[bool]
    pruned_at: list[int]
    scores: list[list[float]]
    policy_tokens: int
    scorer_tokens: int
    seconds: float

    @property
    def n_generated(self) -> list[int]:
        return [len(r) for r in self.response_ids]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class DecodeSetup:
    """What every decoding loop of the kit takes from the policy and its tokenizer (`decode_setup`): the device,
    the suppressed token ids (`bad`, and as a tensor `bad_t`, None when there are none), EOS and pad ids, the BOS
    prefix of every prompt (empty when the tokenizer has none) and the per-sample sampler (None: greedy)."""

    device: torch.device
    bad: list[int]
    bad_t: torch.Tensor | None
    eos: int
    pad: int
    bos: list[int]
    sampler: PerSampleGumbel | None

    def encode(self, tokenizer, prompts: list[str]) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
        """BOS + each prompt's token ids, and the batch left-padded with its attention mask (B, T)."""
        enc = [self.bos + tokenizer(t, add_special_tokens=False)["input_ids"] for t in prompts]
        ids, att = pad_ids(enc, self.pad, side="left")
        return enc, ids, att


def decode_setup(policy, tokenizer, suppress_tokens: list[str] | None, seed: int, temperature: float) -> DecodeSetup:
    """Put `policy` in eval mode and gather what a decoding loop needs (`DecodeSetup`); temperature 0 is greedy."""
    policy.eval()
    device = policy.device
    bad = [tokenizer.convert_tokens_to_ids(t) for t in (suppress_tokens or [])]
    bad_t = torch.tensor(bad, dtype=torch.long, device=device) if bad else None
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    sampler = PerSampleGumbel(seed, temperature) if temperature > 0 else None
    return DecodeSetup(device, bad, bad_t, tokenizer.eos_token_id, tokenizer.pad_token_id, bos, sampler)


@torch.no_grad()
def generate_pruned(
    policy,
    tokenizer,
    prompts: list[str],
    uids: list[int],
    scorer=None,
    threshold: float = float("-inf"),
    skip_tokens: int = 5,
    chunk_size: int = 8,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
    suppress_tokens: list[str] | None = None,
    desc: str = "generating",
) -> PrunedGeneration:
    """Sample one response per (prompt, uid) and stop samples whose score falls below `threshold` while they
    are being generated.

    Rows are generated in batches with HF `generate`, `chunk_size` tokens per call, continuing from the policy's
    key/value cache. After each chunk the scorer reads the new tokens (incrementally, see `RewardModelScorer`);
    a sample is pruned at the first response token t >= `skip_tokens` whose score is below `threshold`
    (`first_below`, the same rule as offline filtering), and pruned or finished rows leave the batch (policy
    cache and scorer cache alike), so later chunks cost less. Without a scorer nothing is pruned and finished
    rows still leave the batch between chunks; ``chunk_size >= max_new_tokens`` is one plain `generate` call.

    Sampling is per-sample (`PerSampleGumbel`): a sample's tokens depend only on (seed, uid), so the same uids
    give the same responses with or without pruning, up to floating-point ties. temperature 0 is greedy.
    """
    ds = decode_setup(policy, tokenizer, suppress_tokens, seed, temperature)
    device, bad, eos, pad, sampler = ds.device, ds.bad, ds.eos, ds.pad, ds.sampler
    chunk_size = max(1, min(chunk_size, max_new_tokens))
    n = len(prompts)
    resp: list[list[int]] = [[] for _ in range(n)]
    scores_out: list[list[float]] = [[] for _ in range(n)]
    finished, pruned_at = [False] * n, [-1] * n
    policy_tokens = scorer_tokens0 = 0
    if scorer is not None:
        scorer_tokens0 = scorer.tokens_read
    order = sorted(range(n), key=lambda i: len(prompts[i]))  # little padding per batch; order restored by index
    _sync(device)
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False):
        rows = order[start:start + batch_size]
        _, ids, att = ds.encode(tokenizer, [prompts[i] for i in rows])
        ids, att, T0 = ids.to(device), att.to(device), ids.shape[1]  # T0: the padded prompt width
        alive = torch.tensor(rows, dtype=torch.long)  # input index of each live row
        row_uids = torch.tensor([uids[i] for i in rows], dtype=torch.long)
        cache = DynamicCache(config=policy.config)
        if scorer is not None:
            scorer.start(ids, att, row_uids)
        done = 0
        while len(alive) and done < max_new_tokens:
            c = min(chunk_size, max_new_tokens - done)
            procs = LogitsProcessorList()
            if sampler is not None:
                sampler.set_rows(row_uids.to(device), T0)
                procs.append(sampler)
            out = policy.generate(input_ids=ids, attention_mask=att, past_key_values=cache, max_new_tokens=c,
                                  do_sample=False, logits_processor=procs, suppress_tokens=bad or None,
                                  pad_token_id=pad, eos_token_id=eos)
            new = out[:, ids.shape[1]:]
            C = new.shape[1]
            is_eos = new == eos
            # real tokens: everything up to and including the first EOS
            valid = (is_eos.long().cumsum(1) - is_eos.long()) == 0
            ended = is_eos.any(1)
            s = None
            if scorer is not None and C:
                s = scorer.step(new, valid.long(), done)
                cut = first_below(s, valid, threshold, skip_tokens, done).cpu()
            else:
                cut = torch.full((len(alive),), -1, dtype=torch.long)
            new_c, valid_c, ended_c = new.cpu(), valid.cpu(), ended.cpu()
            s_c = s.float().cpu() if s is not None else None
            for j, i in enumerate(alive.tolist()):
                m = int(valid_c[j].sum())
                resp[i].extend(new_c[j, :m].tolist())
                if s_c is not None:
                    scores_out[i].extend(s_c[j, :m].tolist())
                policy_tokens += m
                if cut[j] >= 0:
                    pruned_at[i] = int(cut[j])
                elif ended_c[j]:
                    finished[i] = True
            done += C
            keep = ((cut < 0) & ~ended_c).nonzero().squeeze(1)
            if C == 0 or len(keep) == 0:
                break
            if len(keep) < len(alive):
                cache.batch_select_indices(keep.to(device))
                if scorer is not None:
                    scorer.select(keep)
                out, att = out[keep.to(device)], att[keep.to(device)]
                alive, row_uids = alive[keep], row_uids[keep]
            att = torch.cat([att, torch.ones((len(alive), C), dtype=att.dtype, device=device)], 1)
            ids = out
    _sync(device)
    seconds = time.perf_counter() - t0
    scorer_tokens = (scorer.tokens_read - scorer_tokens0) if scorer is not None else 0
    return PrunedGeneration(list(uids), resp, finished, pruned_at, scores_out, policy_tokens, scorer_tokens, seconds)
