"""Policy steps: which tokens end a step, and sampling the next step of many prefixes at once, optionally from the
policy's key/value cache of the prefixes (`PrefixCache`), so a step costs only its new tokens.

A step ends at the step delimiter (the toy world's ';', or for free text any token containing a newline) or at the
EOS that ends the solution; a step cut off at `max_step_tokens` is incomplete.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..data import pad_ids


@dataclass
class Step:
    """One sampled step: its token ids (ending with the delimiter or the EOS when complete), the sum of their
    log-probabilities under the policy, and whether the step ended the solution (EOS) or was cut off at
    `max_step_tokens` (complete = False)."""

    ids: list[int]
    logprob: float
    ends_solution: bool
    complete: bool

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, len(self.ids))


def step_stop_ids(tokenizer, step_end: str, match: str = "token") -> list[int]:
    """Token ids that end a step: the EOS first, then the delimiters.

    `match="token"`: the delimiter `step_end`, which must be one token (the toy world's ';'). `match="contains"`:
    every token whose text contains `step_end` (for a newline in a BPE vocabulary: '\\n', '\\n\\n', '.\\n', ...;
    a sample's first line then ends at whichever comes first). Special tokens never count as delimiters."""
    if match == "token":
        ids = tokenizer(step_end, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"step_end {step_end!r} is {len(ids)} tokens for this tokenizer; the decoder stops a "
                             "step at one token (choose a delimiter that is a single token, e.g. a newline, or "
                             "beam.step_end_match: contains)")
        return [tokenizer.eos_token_id, ids[0]]
    if match != "contains":
        raise ValueError(f"unknown step_end_match {match!r}; expected 'token' or 'contains'")
    if not step_end:
        raise ValueError("step_end must not be empty")
    try:
        known = _CONTAINING.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: nothing is kept
        known = {}
    key = (step_end, len(tokenizer), tokenizer.eos_token_id)
    if key not in known:  # decoding a 128k vocabulary takes a second or two: once per tokenizer
        special = set(tokenizer.all_special_ids)
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        ids = [i for i, t in enumerate(texts) if step_end in t and i not in special]
        if not ids:
            raise ValueError(f"no token of this tokenizer contains step_end {step_end!r}")
        known[key] = [tokenizer.eos_token_id] + ids
    return list(known[key])


_CONTAINING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""tokenizer -> {(step_end, vocabulary size, EOS id): stop ids} for `step_stop_ids(..., match="contains")`"""


def step_end_ids(tokenizer, step_end: str, match: str = "token") -> list[int]:
    """The delimiter ids of `step_stop_ids` (without the EOS): where a step ends inside a response."""
    eos = tokenizer.eos_token_id
    return [i for i in step_stop_ids(tokenizer, step_end, match)[1:] if i != eos]


@dataclass
class PrefixCache:
    """The policy's keys/values of B prefixes without their last token: per layer (keys, values), each
    (B, heads, L - 1, head_dim) with L the longest prefix, every row's slots right-aligned (left padding, as
    `sample_steps` pads its prefixes); `lengths` (B,): each prefix's length in tokens (the cached slots are its
    first length - 1). The slots in front of a row's tokens hold anything: the attention mask hides them."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    lengths: list[int]


@dataclass
class StepCache:
    """The key/value cache `generate` left after sampling steps from left-padded prefixes of length `width`: slot
    s < width is prefix position s (left-padded), slot width + k the k-th sampled token. `take` keeps the rows of
    chosen candidates as the `PrefixCache` of their extended prefixes."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    width: int
    lengths: list[int]
    """prefix length of every generated row"""

    def take(self, rows: list[int], step_lens: list[int]) -> PrefixCache | None:
        """The `PrefixCache` of prefix + step for generated rows `rows`, whose steps have `step_lens` tokens
        (each >= 1). A row's tokens are contiguous here (its prefix ends at slot width - 1 and its step starts at
        slot width), so one gather per layer moves them right-aligned into the new, narrower layout."""
        if not rows:
            return None
        new_lens = [self.lengths[r] + n for r, n in zip(rows, step_lens)]
        slots = max(new_lens) - 1
        dev = self.layers[0][0].device
        end = torch.tensor([self.width + n - 1 for n in step_lens], device=dev)  # one past each row's last slot
        src = (end[:, None] - slots + torch.arange(slots, device=dev)[None]).clamp(min=0)  # (K, slots)
        rix = torch.tensor(rows, device=dev)[:, None]
        layers = [(k[rix, :, src].transpose(1, 2), v[rix, :, src].transpose(1, 2)) for k, v in self.layers]
        return PrefixCache(layers, new_lens)


@torch.no_grad()
def sample_steps(policy, tokenizer, prefixes: list[list[int]], n: int | list[int], temperature: float,
                 max_step_tokens: int, step_end: str = ";", suppress_ids: list[int] | None = None,
                 stop_ids: list[int] | None = None, prefix_cache: PrefixCache | None = None,
                 return_cache: bool = False) -> list[Step] | tuple[list[Step], StepCache]:
    """Sample `n` next steps for each prefix (token ids, BOS + prompt + steps so far) with HF `generate`; `n` may
    be a list (one count per prefix). `stop_ids` (EOS first, then the delimiters; default
    `step_stop_ids(tokenizer, step_end)`) end a step.

    Generation of a row stops at the step delimiter or the EOS (both passed as end tokens, so finished rows are
    padded while the others go on). Returns the steps of prefix 0, then those of prefix 1, and so on. The
    log-probabilities are those of the policy itself (raw logits, temperature 1), not of the sampling
    distribution: the length-normalised probability in the step score is the model's.

    `prefix_cache` (the `PrefixCache` of exactly these prefixes, e.g. `StepCache.take` of the previous call) lets
    `generate` run only each prefix's last token before sampling instead of the whole prefix; the samples and
    log-probabilities are those of the uncached call up to float round-off (the same rows, the same random draws).
    `return_cache` also returns the `StepCache` to take the next prefixes' cache from."""
    policy.eval()
    stops = list(stop_ids) if stop_ids is not None else step_stop_ids(tokenizer, step_end)
    stop_set = set(stops)
    counts = [n] * len(prefixes) if isinstance(n, int) else list(n)
    prefixes = [p for p, k in zip(prefixes, counts) for _ in range(k)]
    ids, att = pad_ids(prefixes, tokenizer.pad_token_id, side="left")
    kw = dict(max_new_tokens=max_step_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=stops,
              suppress_tokens=suppress_ids or None, output_logits=True,
              return_dict_in_generate=True)
    if temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
    else:
        kw.update(do_sample=False)
    dev = policy.device
    if prefix_cache is not None:
        kw["past_key_values"] = _expanded_cache(prefix_cache, prefixes, counts, ids.shape[1], policy.config)
    out = policy.generate(input_ids=ids.to(dev), attention_mask=att.to(dev), **kw)
    gen = out.sequences[:, ids.shape[1]:].cpu()
    logp = torch.stack([F.log_softmax(lg.float(), -1) for lg in out.logits], 1).cpu()  # (B*n, S, V)
    tok_logp = logp.gather(-1, gen[:, :logp.shape[1]].unsqueeze(-1)).squeeze(-1)
    steps = []
    for row, lp in zip(gen.tolist(), tok_logp):
        cut = next((k for k, t in enumerate(row) if t in stop_set), None)
        n_tok = len(row) if cut is None else cut + 1
        toks = row[:n_tok]
        steps.append(Step(toks, float(lp[:n_tok].sum()), cut is not None and toks[-1] == tokenizer.eos_token_id,
                          cut is not None))
    if not return_cache:
        return steps
    layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    return steps, StepCache(layers, ids.shape[1], [len(p) for p in prefixes])


def prefix_cache_supported(config) -> bool:
    """Whether a policy with this config keeps every token's keys/values in a plain `DynamicLayer` per layer, as
    `StepCache.take` assumes (slot = position). Sliding-window or other cache layers drop or reshape slots: the
    decoder then re-encodes the prefixes instead."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)


@torch.no_grad()
def prefix_cache_of(policy, prefixes: list[list[int]], pad_id: int) -> PrefixCache | None:
    """The policy's `PrefixCache` of `prefixes` (token ids), one forward pass over each prefix but its last token,
    left-padded: what `sample_steps` expands to every candidate of a prefix instead of encoding the prefix once per
    candidate. None when a prefix has a single token (nothing to cache)."""
    if min(len(p) for p in prefixes) < 2:
        return None
    ids, att = pad_ids([p[:-1] for p in prefixes], pad_id, side="left")
    pos = (att.cumsum(-1) - 1).clamp(min=0)  # as `generate` numbers left-padded rows
    dev = policy.device
    out = policy(input_ids=ids.to(dev), attention_mask=att.to(dev), position_ids=pos.to(dev), use_cache=True,
                 logits_to_keep=1)
    return PrefixCache([(layer.keys, layer.values) for layer in out.past_key_values.layers],
                       [len(p) for p in prefixes])


def _expanded_cache(cache: PrefixCache, rows: list[list[int]], counts: list[int], width: int, config) -> DynamicCache:
    """`cache` (one row per prefix) repeated `counts` times per prefix, as the `generate` cache of the left-padded
    `rows` (width `width`): every row's last token is left to run."""
    expected = [n for n, k in zip(cache.lengths, counts) for _ in range(k)]
    if [len(r) for r in rows] != expected or cache.layers[0][0].shape[2] != width - 1:
        raise ValueError("prefix_cache does not hold these prefixes: lengths "
                         f"{cache.lengths} (width {cache.layers[0][0].shape[2] + 1}), prefixes of width {width}")
    rep = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)).to(cache.layers[0][0].device)
    out = DynamicCache(config=config)
    for layer, (k, v) in zip(out.layers, cache.layers, strict=True):
        # what `DynamicLayer.update` makes of an empty layer (keys = cat([], k)), without copying k and v once more
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k[rep], v[rep]
    return out
