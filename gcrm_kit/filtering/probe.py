"""A probe on the policy's own hidden states: a logistic-regression head (scikit-learn) that reads the state after
each generated token and estimates the chance that the solution ends right. The states exist anyway while the
policy generates, so the estimate costs almost nothing (the head's d + 1 multiply-adds per token, counted as its
scorer in the cost model); it prunes with the same rule as the reward models' signals (`pruning.first_below`).

Training: solutions of the notebook-01 run's training questions (its data/train_pairs.jsonl: per question a
correct (`chosen`) and an incorrect (`rejected`) solution), each read once by the policy; `positions` prefix
positions per solution are drawn (seeded) and labelled with the solution's outcome, so the probe learns a value
estimate at any prefix, not only at the end. None of these questions is a validation or test question.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data import Encoded, PreferencePair, encode, load_jsonl, pad_batch


@torch.no_grad()
def policy_states(policy, tokenizer, prompts: list[str], responses: list[str], eos: list[bool], layer: int = -1,
                  batch_size: int = 16) -> list[np.ndarray]:
    """The policy's hidden states of `layer` (an index into `output_hidden_states`; -1 the last) at each response
    token of each (prompt, response) in the kit's format, the EOS included where `eos` says the sample finished.
    Returns n float32 arrays (n_i, d): row t is the state after reading response token t."""
    device = next(policy.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    policy.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        seqs = []
        for i in range(start, min(start + batch_size, len(prompts))):
            seqs.append(_encode_sample(tokenizer, prompts[i], responses[i], eos[i]))
        batch = pad_batch([Encoded(e.input_ids, e.response_start) for e in seqs], pad, "right")
        hs = policy(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                    output_hidden_states=True).hidden_states[layer]
        for b, e in enumerate(seqs):
            out.append(hs[b, e.response_start:len(e.input_ids)].float().cpu().numpy())
    return out


def _encode_sample(tokenizer, prompt: str, response: str, eos: bool) -> Encoded:
    """A sample in the kit's format; an empty response (the policy wrote its EOS at once) is BOS + prompt + EOS,
    whose one response position is the EOS, where `data.encode` refuses it (a training pair must not be empty)."""
    if response:
        return encode(tokenizer, prompt, response, eos=eos)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return Encoded(ids + ([tokenizer.eos_token_id] if eos else []), len(ids))


def training_pairs(run_dir: Path, n: int) -> list[PreferencePair]:
    """The first `n` pairs of the notebook-01 run's data/train_pairs.jsonl (an error names the file when it has
    none)."""
    path = Path(run_dir) / "data" / "train_pairs.jsonl"
    return load_jsonl(path, PreferencePair)[:n]


def train_probe(states: list[np.ndarray], labels: np.ndarray, positions: int, seed: int, c: float):
    """Fit the probe on `positions` prefix positions per solution (all of a shorter one), drawn with `seed`, each
    labelled with its solution's outcome (1 right, 0 wrong). states: n arrays (n_i, d); labels: (n,). Returns a
    fitted scikit-learn pipeline (standardisation, then logistic regression). Raises ValueError when the labels
    are all one class."""
    labels = np.asarray(labels, dtype=int)
    if len(set(labels.tolist())) < 2:
        raise ValueError("the probe needs right and wrong training solutions; its labels are all "
                         f"{labels[0] if len(labels) else 'missing'}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for h, y in zip(states, labels):
        take = rng.choice(len(h), size=min(positions, len(h)), replace=False)
        xs.append(h[np.sort(take)])
        ys.append(np.full(len(take), y))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return model.fit(np.concatenate(xs), np.concatenate(ys))


def training_states(policy, tokenizer, pairs: list[PreferencePair], positions: int, seed, layer: int = -1,
                    batch_size: int = 16) -> tuple[list[np.ndarray], np.ndarray]:
    """The probe's training data from `pairs`: per solution (chosen, label 1, then rejected, label 0) the policy's
    states at `positions` prefix positions drawn with `seed` (all of a shorter solution), read a batch at a time so
    that only the drawn rows are kept. Returns (states: 2 x len(pairs) arrays (<= positions, d), labels (2n,))."""
    rng = np.random.default_rng(seed)
    prompts = [x.prompt for x in pairs for _ in (0, 1)]
    responses = [r for x in pairs for r in (x.chosen, x.rejected)]
    out = []
    for start in range(0, len(prompts), batch_size):
        end = start + batch_size
        for h in policy_states(policy, tokenizer, prompts[start:end], responses[start:end],
                               [True] * len(prompts[start:end]), layer, batch_size):
            out.append(h[np.sort(rng.choice(len(h), size=min(positions, len(h)), replace=False))])
    return out, np.array([1, 0] * len(pairs))


def sample_values(policy, tokenizer, probe, prompts: list[str], responses: list[str], eos: list[bool], width: int,
                  layer: int = -1, batch_size: int = 16) -> np.ndarray:
    """`probe_values` of every sample, its states read a batch at a time (never all held at once): (S, width)."""
    out = np.full((len(prompts), width), np.nan, dtype=np.float32)
    for start in range(0, len(prompts), batch_size):
        end = start + batch_size
        states = policy_states(policy, tokenizer, prompts[start:end], responses[start:end], eos[start:end], layer,
                               batch_size)
        out[start:start + len(states)] = probe_values(probe, states, width)
    return out


def probe_values(probe, states: list[np.ndarray], width: int) -> np.ndarray:
    """(S, width) the probe's probability of a right solution after each response token, NaN past each end (the
    layout of `SampleScores.q`, so the pruning rule and its threshold grid apply unchanged)."""
    out = np.full((len(states), width), np.nan, dtype=np.float32)
    for i, h in enumerate(states):
        if len(h):  # a sample cut off before writing anything has no position to read
            out[i, :len(h)] = probe.predict_proba(h)[:, 1]
    return out
