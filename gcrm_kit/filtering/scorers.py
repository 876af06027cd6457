"""Online scorers: what reads the tokens a policy is generating and scores them, chunk by chunk, for
`decoding.generate_pruned`: a reward model reading each token once through its key/value cache
(`RewardModelScorer`), or cuts fixed in advance (`CutScorer`, random pruning)."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from ..models import backbone_of
from ..qvalues import q_values


class RewardModelScorer:
    """Scores newly generated tokens with a reward model, keeping its key/value cache between calls, so every
    token is read once: the prefix is never re-encoded.

    signal ``q``: Q_t = cos(h_t, prototype) (PAPER.md section 2); ``token_reward``: the scalar head applied at
    every token, w^T h_t (the early-rejection style of reading a reward model before the end).
    """

    def __init__(self, model, signal: str = "q", prototype: torch.Tensor | None = None):
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
        self.model.eval()
        self.cache, self.mask = DynamicCache(config=self.model.config), None
        self._forward(input_ids.to(self.device), attention_mask.to(self.device))

    def step(self, new_ids: torch.Tensor, new_mask: torch.Tensor, offset: int) -> torch.Tensor:
        """Scores (B, C) of the C new tokens (B, C); `new_mask` marks real tokens (0 after an EOS)."""
        h = self._forward(new_ids.to(self.device), new_mask.to(self.device))
        if self.signal == "q":
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
