"""What a method costs in compute: a FLOP model from parameter counts and token counts (`Spend`, `flops`), and the
parameter counts themselves (`count_params`, `checkpoint_params`).

The estimate is the usual one for a decoder: a forward pass costs 2 x N FLOPs per token, N the parameters that do a
matrix multiply per token (every parameter except the input embedding, which is a table look-up; the LM head and a
reward head count). Attention over the context (about 2 x layers x context x width per token) is left out: at the
lengths of this notebook it is a small share, and it would only scale both sides of every comparison alike.

What is counted, per sample:

- policy: its prompt (BOS + prompt tokens) once when the sample is started (prefill; a sample never drawn costs
  nothing), plus every response token it generated (the EOS of a finished sample included);
- scorer: every token a scorer read (prompt included; through a key/value cache each token is read once), times the
  scorer's own parameters. The policy's own log-probabilities and a probe on its hidden states come with generation;
  a probe's head (d + 1 parameters) is counted as its scorer.

Shared prompts are counted once per sample (no prefix caching across the N samples of a question), as plain
sampling does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification)

FLOPS_PER_PARAM_TOKEN = 2
"""forward FLOPs per parameter per token (a multiply and an add)"""


@dataclass
class Spend:
    """What one method did with one set's S samples at one operating point.

    started: (S,) bool, the policy began the sample (its prompt was read); generated: (S,) response tokens the
    policy generated; kept: (S,) bool, the sample votes; weights: (S,) vote weights (None: 1 each);
    scorer_read: (S,) tokens a scorer read (prompt included); scorer_params: that scorer's parameters (0: none);
    credit: (Q,) per-question credit when the method does not take a plain vote (None: the vote over `kept`)."""

    started: np.ndarray
    generated: np.ndarray
    kept: np.ndarray
    weights: np.ndarray | None = None
    scorer_read: np.ndarray | None = None
    scorer_params: float = 0.0
    credit: np.ndarray | None = None


def count_params(model: torch.nn.Module) -> int:
    """Parameters that cost 2 FLOPs per token in a forward pass: all of `model`'s, less its input embedding (a
    look-up); tied LM-head weights count once, as the LM head (a matrix multiply)."""
    total = sum(p.numel() for p in model.parameters())  # tied weights are one parameter here
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = out is not None and out.weight is emb.weight
    return int(total - (0 if tied else emb.weight.numel()))


def checkpoint_params(path: str | Path, kind: str) -> int:
    """`count_params` of the checkpoint at `path` without loading its weights (built on the meta device from its
    config). kind: ``causal_lm`` (a policy), ``reward_model`` (a sequence-classification reward model) or
    ``process`` (a process reward model: token classification)."""
    classes = {"causal_lm": AutoModelForCausalLM, "reward_model": AutoModelForSequenceClassification,
               "process": AutoModelForTokenClassification}
    if kind not in classes:
        raise ValueError(f"unknown kind {kind!r}; expected 'causal_lm', 'reward_model' or 'process'")
    config = AutoConfig.from_pretrained(path)
    cls = classes[kind]
    with torch.device("meta"):
        model = cls.from_config(config)
    return count_params(model)


def prompt_tokens(records, tokenizer) -> np.ndarray:
    """(S,) tokens the policy reads before each sample's response: the BOS (when the tokenizer has one) and the
    prompt, as the kit encodes them."""
    bos = int(tokenizer.bos_token_id is not None)
    return np.array([bos + len(tokenizer(r.prompt, add_special_tokens=False)["input_ids"]) for r in records],
                    dtype=np.int64)


def flops(spend: Spend, prompts: np.ndarray, policy_params: float) -> dict:
    """FLOPs of `spend` (module docstring): policy_flops = 2 x policy_params x (prompt tokens of started samples +
    generated tokens); scorer_flops = 2 x scorer_params x tokens read; flops their sum; policy_tokens the
    generated tokens, scorer_tokens the tokens read."""
    started = np.asarray(spend.started, dtype=bool)
    gen = np.asarray(spend.generated, dtype=np.int64)
    if np.any(gen[~started] > 0):
        raise ValueError("a sample that was never started cannot have generated tokens")
    read = 0 if spend.scorer_read is None else int(np.asarray(spend.scorer_read, dtype=np.int64).sum())
    pol = FLOPS_PER_PARAM_TOKEN * float(policy_params) * float(prompts[started].sum() + gen.sum())
    sc = FLOPS_PER_PARAM_TOKEN * float(spend.scorer_params) * float(read)
    return {"policy_flops": pol, "scorer_flops": sc, "flops": pol + sc, "policy_tokens": int(gen.sum()),
            "scorer_tokens": read}


def full_spend(lengths: np.ndarray) -> Spend:
    """Every sample started, generated to its end and voting, no scorer: the unfiltered majority vote."""
    n = len(lengths)
    return Spend(np.ones(n, dtype=bool), np.asarray(lengths, dtype=np.int64), np.ones(n, dtype=bool))


def scorer_reads(prompts: np.ndarray, generated: np.ndarray, started: np.ndarray | None = None) -> np.ndarray:
    """(S,) tokens a scorer reads when it follows generation: each started sample's prompt and the response tokens
    generated, every one once (through a key/value cache)."""
    started = np.ones(len(prompts), dtype=bool) if started is None else np.asarray(started, dtype=bool)
    return np.where(started, prompts + np.asarray(generated, dtype=np.int64), 0)


def break_even_scorer_ratio(spend: Spend, prompts: np.ndarray, lengths: np.ndarray, policy_params: float
                            ) -> float | None:
    """The scorer size, as a share of the policy's, at which `spend` costs exactly what generating everything
    costs: below it the method saves compute. (policy FLOPs saved) / (2 x policy_params x tokens read); None when
    the scorer reads nothing."""
    read = 0 if spend.scorer_read is None else float(np.asarray(spend.scorer_read).sum())
    if read <= 0:
        return None
    ref = flops(full_spend(lengths), prompts, policy_params)["policy_flops"]
    saved = ref - flops(Spend(spend.started, spend.generated, spend.kept), prompts, policy_params)["policy_flops"]
    return float(saved / (FLOPS_PER_PARAM_TOKEN * policy_params * read))
