"""Reward models as standard Hugging Face sequence-classification checkpoints, and their hidden states.

A reward model is `AutoModelForSequenceClassification` with ``num_labels=1``: a causal backbone and a bias-free
linear `score` head. Its reward is the head applied to the final-layer state (after the final norm) at the
last non-pad token, the EOS. The kit reads the same states for the contrastive loss and for Q-values, in one
forward pass, and computes position ids over real tokens so the result does not depend on the padding side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import check_tokenizer


def reward_model_from_policy(policy_dir: str | Path, seed: int | None = None):
    """Load a policy checkpoint as a reward model: same backbone, a new scalar head (normal, std 0.02 as the
    config's initializer_range), pad id set so plain `transformers` pools at the EOS. Returns (model, tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    check_tokenizer(tokenizer)
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation is part of the reward model's seed
    model = AutoModelForSequenceClassification.from_pretrained(
        policy_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    return model, tokenizer


def load_reward_model(path: str | Path):
    """Load a saved reward model and its tokenizer with plain `transformers`. Returns (model, tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer(tokenizer)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    model.eval()
    return model, tokenizer


def backbone_of(model):
    """The transformer body of a sequence-classification model (unwrapping peft if present)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, model.base_model_prefix), model.score


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask -> (B,) index of each row's last real token; right or left padding alike."""
    T = attention_mask.shape[-1]
    idx = torch.arange(T, device=attention_mask.device)
    return (idx * attention_mask.to(idx.dtype)).argmax(-1)


@dataclass
class RewardOutput:
    """hidden: (B, T, D) final-layer states after the final norm; rewards: (B,) scalar reward at the EOS;
    token_rewards: (B, T) the head applied at every position."""

    hidden: torch.Tensor
    rewards: torch.Tensor
    token_rewards: torch.Tensor


def reward_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   position_ids: torch.Tensor | None = None) -> RewardOutput:
    """One forward pass returning final states and rewards. `position_ids` default to counts over real tokens."""
    if position_ids is None:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    body, head = backbone_of(model)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                  use_cache=False).last_hidden_state
    token_rewards = head(hidden).squeeze(-1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    rewards = token_rewards[rows, last_token_index(attention_mask)]
    return RewardOutput(hidden, rewards, token_rewards)


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 128,
          desc: str = "scoring") -> torch.Tensor:
    """Rewards (N,) for (prompt, response) pairs, in the kit's format, batched."""
    from tqdm.auto import tqdm

    from .data import encode, pad_batch

    model.eval()
    out = []
    for s in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        seqs = [encode(tokenizer, p, r) for p, r in zip(prompts[s:s + batch_size], responses[s:s + batch_size])]
        b = pad_batch(seqs, tokenizer.pad_token_id)
        dev = next(model.parameters()).device
        r = reward_forward(model, b["input_ids"].to(dev), b["attention_mask"].to(dev), b["position_ids"].to(dev))
        out.append(r.rewards.float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
