"""The baselines guided decoding is compared with: whole solutions sampled from the policy (plain sampling, and the
N samples of best-of-N), read by a reward model (final reward and EOS state), and the pick of the best per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import encode, pad_batch
from ..generation import sample_responses
from ..models import reward_forward


@dataclass
class Sampled:
    """N sampled responses per prompt, with the reward model's reward and final state for each (when scored).
    `policy_tokens`: tokens sampled per prompt; `policy_tokens_processed`: those plus the N encodings of
    BOS + prompt."""

    prompts: list[str]
    responses: list[list[str]]
    policy_tokens: list[int]
    rewards: torch.Tensor | None = None   # (P, N)
    final_hidden: torch.Tensor | None = None  # (P, N, D)
    rm_tokens: list[int] | None = None
    policy_tokens_processed: list[int] | None = None


def sample_solutions(policy, tokenizer, prompts: list[str], n: int, temperature: float, max_new_tokens: int,
                     seed: int, suppress_tokens: list[str] | None = None, batch_size: int = 256) -> Sampled:
    """`n` whole solutions per prompt (plain sampling), with the policy tokens each prompt sampled (response + EOS)
    and processed (those plus the `n` encodings of BOS + prompt, one per sample)."""
    outs = sample_responses(policy, tokenizer, prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, suppress_tokens=suppress_tokens, seed=seed, desc="sampling")
    tokens = [sum(min(max_new_tokens, len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1) for r in rs)
              for rs in outs]
    bos = 1 if tokenizer.bos_token_id is not None else 0
    processed = [t + n * (bos + len(tokenizer(q, add_special_tokens=False)["input_ids"]))
                 for q, t in zip(prompts, tokens)]
    return Sampled(prompts, outs, tokens, policy_tokens_processed=processed)


@torch.no_grad()
def score_samples(model, tokenizer, sampled: Sampled, batch_size: int = 256) -> Sampled:
    """Fill in the reward (P, N) and the final state at the EOS (P, N, D) of every sampled response, and the
    tokens each prompt ran through the reward model."""
    P, N = len(sampled.prompts), len(sampled.responses[0]) if sampled.responses else 0
    flat = [(i, r if r else " ") for i, rs in enumerate(sampled.responses) for r in rs]
    rewards, hidden, rm_tokens = [], [], [0] * P
    dev = next(model.parameters()).device
    for s in range(0, len(flat), batch_size):
        seqs = [encode(tokenizer, sampled.prompts[i], r) for i, r in flat[s:s + batch_size]]
        for (i, _), e in zip(flat[s:s + batch_size], seqs):
            rm_tokens[i] += len(e.input_ids)
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        last = b["attention_mask"].sum(-1) - 1
        rewards.append(out.rewards.float().cpu())
        hidden.append(out.hidden[torch.arange(len(seqs), device=dev), last].float().cpu())
    sampled.rewards = torch.cat(rewards).view(P, N)
    sampled.final_hidden = torch.cat(hidden).view(P, N, -1)
    sampled.rm_tokens = rm_tokens
    return sampled


def pick(sampled: Sampled, by: torch.Tensor) -> list[str]:
    """The response with the highest `by` (P, N) per prompt (first on ties)."""
    idx = by.argmax(-1).tolist()
    return [rs[k] for rs, k in zip(sampled.responses, idx)]


@torch.no_grad()
def read_final_states(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 256
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward (N,) and the final-layer state at the EOS (N, D) of every (prompt, response) in the kit's format
    (an empty response is read as one space), float32 on the CPU, in input order."""
    dev = next(model.parameters()).device
    rewards, hidden = [], []
    for s in range(0, len(prompts), batch_size):
        seqs = [encode(tokenizer, q, r if r else " ") for q, r in zip(prompts[s:s + batch_size],
                                                                     responses[s:s + batch_size])]
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        last = b["attention_mask"].sum(-1) - 1
        rewards.append(out.rewards.float().cpu())
        hidden.append(out.hidden[torch.arange(len(seqs), device=dev), last].float().cpu())
    if not hidden:
        return torch.zeros(0), torch.zeros(0, model.config.hidden_size)
    return torch.cat(rewards), torch.cat(hidden)
