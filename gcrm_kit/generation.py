"""Sampling solutions from a policy with Hugging Face `generate`, batched, with a progress bar; per-sample
reproducible sampling; and generation that stops samples whose reward-model score falls below a threshold while
they are being generated (online pruning, PAPER.md section 4)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

from .data import pad_ids


@torch.no_grad()
def sample_responses(
    model,
    tokenizer,
    prompts: list[str],
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 256,
    suppress_tokens: list[str] | None = None,
    seed: int = 0,
    desc: str = "sampling",
    return_finished: bool = False,
):
    """Sample `n` responses for each prompt.

    The prompt is encoded as BOS + prompt, left-padded; `suppress_tokens` (strings) are never generated
    (the toy world suppresses its self-checking marks). temperature 0 means greedy decoding.
    Returns one list of `n` decoded responses (special tokens removed) per prompt, in prompt order; with
    `return_finished`, also the same-shaped lists of whether each response ended with the EOS token (False: it was
    cut at `max_new_tokens`, and the decoded text carries no sign of that).
    """
    model.eval()
    torch.manual_seed(seed)
    bad = [tokenizer.convert_tokens_to_ids(t) for t in (suppress_tokens or [])]
    # sort by length so batches waste little padding; restore order at the end
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    flat.sort(key=lambda x: len(x[1]))
    out: list[list[str]] = [[] for _ in prompts]
    fin: list[list[bool]] = [[] for _ in prompts]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for start in tqdm(range(0, len(flat), batch_size), desc=desc, leave=False):
        chunk = flat[start:start + batch_size]
        enc = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for _, p in chunk]
        ids, att = pad_ids(enc, tokenizer.pad_token_id, side="left")
        gen_kwargs = dict(
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=bad or None,
        )
        if temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            gen_kwargs.update(do_sample=False)
        seqs = model.generate(input_ids=ids.to(model.device), attention_mask=att.to(model.device), **gen_kwargs)
        new = seqs[:, ids.shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        ended = (new == tokenizer.eos_token_id).any(1).tolist()
        for (i, _), t, e in zip(chunk, texts, ended):
            out[i].append(t)
            fin[i].append(bool(e))
    return (out, fin) if return_finished else out


# ------------------------------------------------------------------------------------------------ per-sample noise
#
# `sample_responses` draws from one random stream shared by the whole batch, so a sample depends on which other
# samples sit in its batch. Pruning changes the batch while it runs; to compare a pruned run with an unpruned one
# on the SAME samples, each sample's randomness must belong to the sample. The Gumbel-max trick gives that:
# argmax(logits / T + G) with G iid Gumbel(0, 1) is an exact draw from softmax(logits / T), and G can be a pure
# function of (seed, sample id, step, token), computed by a counter-based hash. Greedy decoding plus this
# processor is then plain multinomial sampling whose result depends on nothing but the sample's own id.

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2**32 for int64 x in [0, 2**32), without overflowing int64 (m is split in 16-bit halves)."""
    lo, hi = m & 0xFFFF, m >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' "lowbias32") on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hashed_uniform(seed: int, uids: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Uniforms in (0, 1), shape (B, V), that depend only on (seed, uid of each row, step, token id).

    uids: (B,) integer sample ids in [0, 2**32). Returns float64 on the uids' device."""
    dev = uids.device
    h = _mix32(torch.full_like(uids, seed & _M32, dtype=torch.long) ^ 0x5BD1E995)
    h = _mix32(h ^ (uids.long() & _M32))
    h = _mix32(h ^ (step & _M32))
    v = _mix32((torch.arange(vocab_size, device=dev, dtype=torch.long) + 0x9E3779B9) & _M32)
    x = _mix32(h[:, None] ^ v[None, :])
    return (x.double() + 0.5) / 2.0 ** 32


class PerSampleGumbel(LogitsProcessor):
    """Makes greedy `generate` sample from softmax(logits / temperature) with noise owned by each sample.

    Call `set_rows(uids, prompt_len)` before each `generate` call: `uids` (B,) names the sample in each row and
    `prompt_len` is the padded prompt width, so the response step is ``input_ids.shape[1] - prompt_len``.
    """

    def __init__(self, seed: int, temperature: float):
        if temperature <= 0:
            raise ValueError("PerSampleGumbel needs temperature > 0 (use plain greedy decoding for 0)")
        self.seed, self.temperature = int(seed), float(temperature)
        self.uids: torch.Tensor | None = None
        self.prompt_len = 0

    def set_rows(self, uids: torch.Tensor, prompt_len: int) -> None:
        self.uids, self.prompt_len = uids, int(prompt_len)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        u = hashed_uniform(self.seed, self.uids.to(scores.device), step, scores.shape[-1])
        gumbel = -torch.log(-torch.log(u))
        return scores / self.temperature + gumbel.to(scores.dtype)


# ------------------------------------------------------------------------------------------------ pruning rule


def first_below(scores: torch.Tensor, valid: torch.Tensor, threshold: float, skip: int, offset: int = 0
                ) -> torch.Tensor:
    """The pruning rule, shared by offline filtering and online generation.

    scores, valid: (B, C) per-token scores of response tokens ``offset .. offset + C - 1`` and which of them
    exist. A sample is pruned at the first response token t >= `skip` whose score is below `threshold`
    (PAPER.md section 4: the first `skip` tokens are noisy and never prune). Returns (B,) long: that t, or -1.
    """
    pos = torch.arange(scores.shape[1], device=scores.device) + offset
    hit = valid.bool() & (pos >= skip)[None, :] & (scores < threshold)
    first = torch.where(hit.any(1), hit.float().argmax(1) + offset, torch.full_like(hit[:, 0], -1, dtype=torch.long))
    return first.long()


# ------------------------------------------------------------------------------------------------ online scorers


class RewardModelScorer:
    """Scores newly generated tokens with a reward model, keeping its key/value cache between calls, so every
    token is read once: the prefix is never re-encoded.

    signal ``q``: Q_t = cos(h_t, prototype) (PAPER.md section 2); ``token_reward``: the scalar head applied at
    every token, w^T h_t (the early-rejection style of reading a reward model before the end).
    """

    def __init__(self, model, signal: str = "q", prototype: torch.Tensor | None = None):
        from .models import backbone_of

        if signal not in ("q", "token_reward"):
            raise ValueError(f"unknown signal {signal!r}; expected 'q' or 'token_reward'")
        if signal == "q" and prototype is None:
            raise ValueError("signal 'q' needs a prototype")
        self.body, self.head = backbone_of(model)
        self.model, self.signal = model, signal
        self.device = next(model.parameters()).device
        self.prototype = None if prototype is None else prototype.to(self.device).float()
        self.cache = None
        self.mask: torch.Tensor | None = None
        self.tokens_read = 0

    def _forward(self, ids: torch.Tensor, new_mask: torch.Tensor) -> torch.Tensor:
        self.mask = new_mask if self.mask is None else torch.cat([self.mask, new_mask], 1)
        pos = (self.mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        out = self.body(input_ids=ids, attention_mask=self.mask, position_ids=pos, past_key_values=self.cache,
                        use_cache=True)
        self.cache = out.past_key_values
        self.tokens_read += int(new_mask.sum())
        return out.last_hidden_state

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, uids: torch.Tensor) -> None:
        """Read the (left-padded) prompts, (B, T0), filling the cache."""
        from transformers import DynamicCache

        self.model.eval()
        self.cache, self.mask = DynamicCache(config=self.model.config), None
        self._forward(input_ids.to(self.device), attention_mask.to(self.device))

    def step(self, new_ids: torch.Tensor, new_mask: torch.Tensor, offset: int) -> torch.Tensor:
        """Scores (B, C) of the C new tokens (B, C); `new_mask` marks real tokens (0 after an EOS)."""
        h = self._forward(new_ids.to(self.device), new_mask.to(self.device))
        if self.signal == "q":
            from .qvalues import q_values

            return q_values(h, self.prototype)
        return self.head(h).squeeze(-1).float()

    def select(self, idx: torch.Tensor) -> None:
        """Keep only rows `idx` (the samples still being generated)."""
        idx = idx.to(self.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]


class CutScorer:
    """Prunes each sample at a position fixed in advance (random pruning): no model, no compute.

    cuts: sample uid -> response index to prune at (samples absent from it are never pruned)."""

    signal = "cut"

    def __init__(self, cuts: dict[int, int]):
        self.cuts = cuts
        self.rows: torch.Tensor | None = None
        self.tokens_read = 0

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, uids: torch.Tensor) -> None:
        self.rows = torch.tensor([self.cuts.get(int(u), -1) for u in uids], dtype=torch.long)

    def step(self, new_ids: torch.Tensor, new_mask: torch.Tensor, offset: int) -> torch.Tensor:
        pos = torch.arange(new_ids.shape[1]) + offset
        hit = pos[None, :] == self.rows[:, None]
        return torch.where(hit, float("-inf"), float("inf")).to(new_ids.device)

    def select(self, idx: torch.Tensor) -> None:
        self.rows = self.rows[idx.cpu()]


# ------------------------------------------------------------------------------------------------ online generation


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
    policy.eval()
    device = policy.device
    bad = [tokenizer.convert_tokens_to_ids(t) for t in (suppress_tokens or [])]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    sampler = PerSampleGumbel(seed, temperature) if temperature > 0 else None
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
        enc = [bos + tokenizer(prompts[i], add_special_tokens=False)["input_ids"] for i in rows]
        ids, att = pad_ids(enc, pad, side="left")
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
