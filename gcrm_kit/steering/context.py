"""The reward model in context: candidate steps read after the prompt and the beam's prefix, with the key/value
cache of every beam's prefix kept across steps so only the new step's tokens are run (a test checks that the
cached states equal re-scoring the full sequence); and, for the toy world, an exact process value in its place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from ..data import Encoded, pad_batch, pad_ids
from ..models import backbone_of, reward_forward
from ..toyworld import parse_prompt
from ..toyworld.attributes import prefix_error_free
from ..toyworld.problems import PROMPT_END


@dataclass
class RMState:
    """The reward model's view of B live prefixes.

    With a cache: `cache` holds keys/values of every prefix token (B rows, L slots, some of them padding),
    `mask` (B, L) marks the real slots, `next_pos` (B,) is the position id of each row's next token. Without a
    cache, `ids` holds each row's full token ids and every score re-runs them."""

    ids: list[list[int]]
    cache: DynamicCache | None = None
    mask: torch.Tensor | None = None
    next_pos: torch.Tensor | None = None


class ContextScorer:
    """Runs candidate steps through the reward model in context and returns their final states.

    `use_cache=True` keeps the reward model's key/value cache of every beam's prefix and runs only the new step's
    tokens; `use_cache=False` re-runs prompt + prefix + step each time (the reference the cache is tested
    against). A candidate's state is the final-layer state at its last token (`pooling="last"`) or the mean over
    its own tokens (`"mean"`, as the paper's released decoder pools a candidate), in context either way.
    `tokens` counts the tokens run through the reward model."""

    def __init__(self, model, use_cache: bool = True, pooling: str = "last"):
        if pooling not in ("last", "mean"):
            raise ValueError(f"unknown step pooling {pooling!r}; expected 'last' or 'mean'")
        self.model = model.eval()
        self.body, self.head = backbone_of(model)
        self.use_cache = use_cache
        self.pooling = pooling
        self.tokens = 0

    @property
    def device(self):
        return next(self.model.parameters()).device

    @torch.no_grad()
    def start(self, prefixes: list[list[int]]) -> RMState:
        """Encode the prompts (BOS + prompt ids), one row each."""
        if not self.use_cache:
            return RMState([list(p) for p in prefixes])
        ids, mask = pad_ids(prefixes, self._pad_id)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        out = self.body(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                        use_cache=True)
        self.tokens += int(mask.sum())
        return RMState([list(p) for p in prefixes], out.past_key_values, mask.to(dev), mask.sum(-1).to(dev))

    @property
    def _pad_id(self) -> int:
        pad = self.model.config.pad_token_id
        return 0 if pad is None else int(pad)

    @torch.no_grad()
    def extend(self, state: RMState, rows: list[int], steps: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                         RMState]:
        """Append step `steps[c]` to prefix `rows[c]` for every candidate c.

        Returns the candidates' pooled final-layer states (after the norm) (C, D), the reward head at each
        candidate's last token (C,), and the state of the C extended prefixes (to be narrowed with `select`)."""
        new_ids = [state.ids[r] + list(s) for r, s in zip(rows, steps)]
        dev = self.device
        if not self.use_cache:
            b = pad_batch([Encoded(x, len(x)) for x in new_ids], self._pad_id)
            out = reward_forward(self.model, b["input_ids"].to(dev), b["attention_mask"].to(dev),
                                 b["position_ids"].to(dev))
            self.tokens += int(b["attention_mask"].sum())
            lens = b["attention_mask"].sum(-1).to(dev)
            step_lens = torch.tensor([len(s) for s in steps], device=dev)
            pos = torch.arange(b["input_ids"].shape[1], device=dev)[None]
            in_step = (pos >= (lens - step_lens)[:, None]) & (pos < lens[:, None])
            return self._pool(out.hidden, in_step, lens - 1), out.rewards, RMState(new_ids)
        rix = torch.tensor(rows, device=dev)
        ids, smask = pad_ids(steps, self._pad_id)
        S = ids.shape[1]
        ids, smask = ids.to(dev), smask.to(dev)
        cache = _select_cache(state.cache, rix, self.model.config)
        mask = torch.cat([state.mask[rix], smask], dim=1)
        pos = state.next_pos[rix, None] + torch.arange(S, device=dev)[None]
        out = self.body(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        self.tokens += int(smask.sum())
        hidden = out.last_hidden_state
        lens = smask.sum(-1)
        rewards = self.head(hidden[torch.arange(len(steps), device=dev), lens - 1]).squeeze(-1)
        pooled = self._pool(hidden, smask.bool(), lens - 1)
        return pooled, rewards, RMState(new_ids, out.past_key_values, mask, state.next_pos[rix] + lens)

    def _pool(self, hidden: torch.Tensor, in_step: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """hidden (C, S, D), in_step (C, S) bool, last (C,) -> (C, D)."""
        if self.pooling == "last":
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        m = in_step.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def select(self, state: RMState, keep: list[int]) -> RMState:
        """The rows `keep` of `state` (surviving beams), dropping cache slots no row uses any more."""
        ids = [state.ids[k] for k in keep]
        if not self.use_cache or not keep:
            return RMState(ids)
        kix = torch.tensor(keep, device=state.mask.device)
        mask = state.mask[kix]
        used = mask.any(0)
        cache = _select_cache(state.cache, kix, self.model.config, None if bool(used.all()) else used)
        return RMState(ids, cache, mask[:, used], state.next_pos[kix])


class ExactPrefixScorer:
    """Toy world only: a perfect process value in place of the reward model, to see what the decoder does with a
    goal term that is always right mid-solution (the ceiling of step-level guidance on correctness).

    Same interface as `ContextScorer`; a candidate's "state" is (C, 1): +1 when every step written so far is
    right (and, once the solution has ended, the answer), -1 otherwise. Use it with `goal=exact_goal`."""

    use_cache = True
    counts_tokens = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens = 0

    def start(self, prefixes: list[list[int]]) -> RMState:
        return RMState([list(p) for p in prefixes])

    def extend(self, state: RMState, rows: list[int], steps: list[list[int]]):
        new_ids = [state.ids[r] + list(st) for r, st in zip(rows, steps)]
        vals = []
        for ids in new_ids:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt, _, partial = text.partition(PROMPT_END)
            ok = prefix_error_free(parse_prompt(prompt + PROMPT_END), partial, ids[-1] == self.tokenizer.eos_token_id)
            vals.append(1.0 if ok else -1.0)
        h = torch.tensor(vals)[:, None]
        return h, h[:, 0], RMState(new_ids)

    def select(self, state: RMState, keep: list[int]) -> RMState:
        return RMState([state.ids[k] for k in keep])


def exact_goal(hidden: torch.Tensor) -> torch.Tensor:
    """The goal term of `ExactPrefixScorer`'s states: (C, 1) -> (C,)."""
    return hidden[:, 0]


def _select_cache(cache: DynamicCache, rows: torch.Tensor, config, slots: torch.Tensor | None = None) -> DynamicCache:
    """A new DynamicCache holding rows `rows` (and, if given, only the slots `slots`) of `cache`'s keys/values."""
    data = []
    for layer in cache.layers:
        k, v = layer.keys[rows], layer.values[rows]
        if slots is not None:
            k, v = k[:, :, slots], v[:, :, slots]
        data.append((k, v))
    return DynamicCache(ddp_cache_data=data, config=config)
