"""Goal prototypes and Q-values.

A prototype g is the mean of final-layer states over a labelled set of responses (by default the last token,
the EOS, of the preferred training responses, as the released code builds it). The Q-value of a prefix
towards g is cos(h_t, g). Prototypes are saved beside the checkpoint they come from, with their provenance.

Because the backbone is causal, h_t depends only on the prompt and the response up to token t, so one forward
pass over a whole sequence gives the Q-value of every prefix at once (`token_values`): no prefix has to be
re-scored on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import check_tokenizer, encode, pad_batch
from .models import last_token_index, reward_forward
from .io import atomic_write_json

PROTOTYPE_DIR = "prototypes"
POOLINGS = ("last", "mean", "random")
LAYER = "final (after norm)"


@dataclass
class Prototype:
    """A named goal vector (D,) with where it came from."""

    name: str
    vector: torch.Tensor
    provenance: dict = field(default_factory=dict)

    def save(self, model_dir: str | Path, folder: str = PROTOTYPE_DIR) -> Path:
        """Save as <model_dir>/<folder>/<name>.pt with <name>.json beside it (`folder` "": in `model_dir` itself).
        Returns the .pt path."""
        d = Path(model_dir) / folder
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{self.name}.pt.tmp"
        torch.save(self.vector.detach().cpu().float(), tmp)
        tmp.replace(d / f"{self.name}.pt")
        atomic_write_json(d / f"{self.name}.json", {"name": self.name, "dim": int(self.vector.numel()),
                                                     **self.provenance})
        return d / f"{self.name}.pt"

    @classmethod
    def load(cls, model_dir: str | Path, name: str) -> "Prototype":
        d = Path(model_dir) / PROTOTYPE_DIR
        if not (d / f"{name}.pt").is_file():
            have = sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []
            raise FileNotFoundError(f"no prototype {name!r} in {d}; available: {have}")
        meta = json.loads((d / f"{name}.json").read_text())
        return cls(name, torch.load(d / f"{name}.pt", weights_only=True), meta)


def list_prototypes(model_dir: str | Path) -> list[str]:
    """Names of the prototypes saved under `<model_dir>/prototypes/` (sorted; empty when there are none)."""
    d = Path(model_dir) / PROTOTYPE_DIR
    return sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []


def load_prototypes(model_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, Prototype]:
    """Several prototypes of one model by name (all of them when `names` is None), in the order asked."""
    return {n: Prototype.load(model_dir, n) for n in (list_prototypes(model_dir) if names is None else names)}


@torch.no_grad()
def pooled_states_many(model, tokenizer, prompts: list[str], responses: list[str], poolings: Sequence[str],
                       batch_size: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """Final-layer states pooled per sequence in several ways from one forward pass: {pooling: (N, D)}, rows in
    input order. `last`: the EOS state; `mean`: over response tokens and EOS; `random`: one response token (or the
    EOS) drawn uniformly per sequence with `seed` (the paper's ablation; the draws do not depend on batching).
    Sequences are batched by length, so little compute goes to padding."""
    unknown = [x for x in poolings if x not in POOLINGS]
    if unknown:
        raise ValueError(f"unknown pooling {unknown[0]!r}; expected one of {POOLINGS}")
    model.eval()
    dev = next(model.parameters()).device
    seqs = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    u = torch.rand(len(seqs), generator=torch.Generator().manual_seed(seed))
    pick = [min(int(u[i] * s.response_len), s.response_len - 1) for i, s in enumerate(seqs)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].input_ids))
    out = {x: torch.zeros(len(seqs), model.config.hidden_size) for x in poolings}
    for s in tqdm(range(0, len(seqs), batch_size), desc=f"{'/'.join(poolings)}-pooled states", leave=False):
        idx = order[s:s + batch_size]
        b = {k: v.to(dev) for k, v in pad_batch([seqs[i] for i in idx], tokenizer.pad_token_id).items()}
        h = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"]).hidden.float()
        rows = torch.arange(h.shape[0], device=dev)
        for pooling in poolings:
            if pooling == "last":
                v = h[rows, last_token_index(b["attention_mask"])]
            elif pooling == "mean":
                m = b["response_mask"].unsqueeze(-1).float()
                v = (h * m).sum(1) / m.sum(1)
            else:  # random; right padding, so response token j of row i sits at response_start + j
                cols = torch.tensor([seqs[i].response_start + pick[i] for i in idx], device=dev)
                v = h[rows, cols]
            out[pooling][idx] = v.cpu()
    return out


def pooled_states(model, tokenizer, prompts: list[str], responses: list[str], pooling: str = "last",
                  batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """Final-layer states (N, D) pooled per sequence: `last` (the EOS), `mean` (over response tokens and EOS),
    or `random` (one response token drawn uniformly, seeded; the paper's ablation)."""
    return pooled_states_many(model, tokenizer, prompts, responses, [pooling], batch_size, seed)[pooling]


def prototype_provenance(model, pooling: str, count: int, seed: int = 0, extra: dict | None = None) -> dict:
    """The provenance saved with a prototype: checkpoint (the model's `name_or_path`, unless `extra` names one),
    layer, pooling, count, the seed of random pooling, and whatever `extra` adds (the data slice)."""
    return {"checkpoint": str(getattr(model.config, "_name_or_path", "") or ""), "layer": LAYER,
            "pooling": pooling, "count": count, **({"seed": seed} if pooling == "random" else {}), **(extra or {})}


def build_prototype(model, tokenizer, prompts: list[str], responses: list[str], name: str,
                    pooling: str = "last", provenance: dict | None = None, batch_size: int = 128,
                    seed: int = 0) -> Prototype:
    """Mean pooled state over a labelled set of (prompt, response): the goal vector g (D,).

    `pooling`: `last` (the EOS state, as the released code), `mean` (over response tokens and EOS) or `random`
    (one response token per sequence, drawn with `seed`: the paper's ablation). The provenance records the
    checkpoint (the model's `name_or_path` unless `provenance` says otherwise), layer, pooling and count;
    add the data slice in `provenance` (e.g. {"data": "chosen responses of train_pairs.jsonl"})."""
    if not prompts:
        raise ValueError(f"prototype {name!r}: empty labelled set")
    if pooling not in POOLINGS:
        raise ValueError(f"prototype {name!r}: unknown pooling {pooling!r}; expected one of {POOLINGS}")
    states = pooled_states(model, tokenizer, prompts, responses, pooling, batch_size, seed)
    return Prototype(name, states.mean(0), prototype_provenance(model, pooling, len(prompts), seed, provenance))


def build_prototypes(model, tokenizer, prompts: list[str], responses: list[str], labels: Sequence[str | None],
                     pooling: str = "last", provenance: dict | None = None, batch_size: int = 128,
                     seed: int = 0) -> dict[str, Prototype]:
    """One prototype per distinct label of a labelled set, named after the label (e.g. labels "correct" /
    "incorrect", or the value of an attribute); items labelled None are left out. Each prototype's provenance
    records its data slice (`label`) and count. Returns {label: Prototype} in order of first appearance."""
    if not len(prompts) == len(responses) == len(labels):
        raise ValueError(f"prompts, responses and labels differ in length: {len(prompts)}, {len(responses)}, "
                         f"{len(labels)}")
    out = {}
    for label in dict.fromkeys(x for x in labels if x is not None):
        idx = [i for i, x in enumerate(labels) if x == label]
        out[label] = build_prototype(model, tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx],
                                     name=label, pooling=pooling, provenance={**(provenance or {}), "label": label},
                                     batch_size=batch_size, seed=seed)
    return out


def q_values(hidden: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
    """Q_t = cos(h_t, g): hidden (..., D), prototype (D,) -> (...)."""
    return F.cosine_similarity(hidden.float(), prototype.to(hidden.device).float().expand_as(hidden), dim=-1)


def prototype_matrix(prototypes: Mapping[str, "Prototype | torch.Tensor"]) -> tuple[list[str], torch.Tensor]:
    """Names and the (P, D) float32 matrix of several prototypes (Prototype objects or (D,) vectors)."""
    names = list(prototypes)
    if not names:
        return [], torch.zeros(0, 0)
    vecs = [v.vector if isinstance(v, Prototype) else v for v in prototypes.values()]
    dims = {int(v.numel()) for v in vecs}
    if len(dims) != 1:
        raise ValueError(f"prototypes {names} have different sizes {sorted(dims)}")
    return names, torch.stack([v.detach().reshape(-1).float().cpu() for v in vecs])


def batch_q_values(hidden: torch.Tensor, prototypes: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Q-values of every position towards every prototype: hidden (B, T, D), prototypes (P, D) -> (B, T, P).

    cos(h_t, g) as one matrix product of unit vectors (the same numbers as `q_values`, up to float rounding)."""
    h = F.normalize(hidden.float(), dim=-1, eps=eps)
    g = F.normalize(prototypes.to(hidden.device).float(), dim=-1, eps=eps)
    return h @ g.T


@dataclass
class TokenValues:
    """Per-token values of N (prompt, response) sequences, each read in one forward pass.

    Every array has one row per sequence and K+1 columns, K = max(lengths). Column k holds the value of the
    state after reading k response tokens: k = 0 is the last prompt token (nothing of the response read yet),
    k = lengths[i] is the EOS, where the reward is read. Columns past a row's length are NaN.

    q: {prototype name: (N, K+1)} cos(h, g); head: (N, K+1) the reward head w^T h at each state (its EOS column
    is the reward); lengths: (N,) response tokens including the EOS; tokens: N lists of the response's token
    strings plus the EOS token (token j is read at column j+1); hidden: when kept, N float32 arrays
    (lengths[i]+1, D) of the states themselves, columns as above.
    """

    q: dict[str, np.ndarray]
    head: np.ndarray
    lengths: np.ndarray
    tokens: list[list[str]]
    hidden: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def rewards(self) -> np.ndarray:
        """(N,) the reward of each full sequence: the head at the EOS column."""
        return self.head[np.arange(len(self)), self.lengths]

    def values(self, scorer: str) -> np.ndarray:
        """(N, K+1) values of `scorer`: "head", or the name of a prototype (its Q-values)."""
        if scorer == "head":
            return self.head
        if scorer not in self.q:
            raise KeyError(f"no values for {scorer!r}; have 'head' and prototypes {list(self.q)}")
        return self.q[scorer]

    def columns_at(self, fraction: float) -> np.ndarray:
        """(N,) the column reached after reading `fraction` of each response (0 -> 0, 1 -> the EOS column)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        # round half up, so 0.5 of 5 tokens reads 3 of them, whatever numpy's banker's rounding would do
        return np.floor(fraction * self.lengths + 0.5).astype(int).clip(0, self.lengths)

    def at_fraction(self, scorer: str, fraction: float) -> np.ndarray:
        """(N,) the value of `scorer` after reading `fraction` of each response."""
        return self.values(scorer)[np.arange(len(self)), self.columns_at(fraction)]

    def row(self, scorer: str, i: int) -> np.ndarray:
        """(lengths[i]+1,) the values of sequence i without its NaN padding."""
        return self.values(scorer)[i, : self.lengths[i] + 1]

    def subset(self, index: Sequence[int]) -> "TokenValues":
        """The rows in `index`, in that order (columns trimmed to the longest kept row)."""
        index = np.asarray(index, dtype=int)
        lengths = self.lengths[index]
        K = int(lengths.max()) + 1 if len(index) else 1
        return TokenValues({k: v[index, :K] for k, v in self.q.items()}, self.head[index, :K], lengths,
                           [self.tokens[i] for i in index],
                           None if self.hidden is None else [self.hidden[i] for i in index])


@torch.no_grad()
def token_values(model, tokenizer, prompts: list[str], responses: list[str],
                 prototypes: Mapping[str, "Prototype | torch.Tensor"] | None = None, batch_size: int = 64,
                 padding_side: str = "right", keep_hidden: bool = False, desc: str = "token values") -> TokenValues:
    """Q-values towards every prototype and reward-head values at every response token, one forward pass per
    batch. Sequences are in the kit's format (BOS + prompt + response + EOS) and batched by length (to waste
    little padding); position ids count real tokens, so a sequence's values do not depend on its batch or
    padding side, and the causal backbone makes the value at token t independent of the tokens after it.
    Returns a `TokenValues` in the order of `prompts`."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    check_tokenizer(tokenizer)
    names, G = prototype_matrix(prototypes or {})
    model.eval()
    dev = next(model.parameters()).device
    encoded = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    for i, e in enumerate(encoded):
        if e.response_start < 1:
            raise ValueError(f"sequence {i}: no token before the response (no BOS and an empty prompt), so there "
                             "is no state before the response to start its curve from")
    lengths = np.array([e.response_len for e in encoded], dtype=int)
    N, K = len(encoded), int(lengths.max()) if len(encoded) else 0
    q = {n: np.full((N, K + 1), np.nan, dtype=np.float32) for n in names}
    head = np.full((N, K + 1), np.nan, dtype=np.float32)
    hidden: list[np.ndarray | None] = [None] * N
    order = sorted(range(N), key=lambda i: len(encoded[i].input_ids))
    for s in tqdm(range(0, N, batch_size), desc=desc, leave=False):
        idx = order[s:s + batch_size]
        b = {k: v.to(dev) for k, v in pad_batch([encoded[i] for i in idx], tokenizer.pad_token_id,
                                                 padding_side).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        qb = batch_q_values(out.hidden, G).cpu().numpy() if names else None
        tr = out.token_rewards.float().cpu().numpy()
        offset = (1 - b["attention_mask"]).sum(-1).cpu().numpy() if padding_side == "left" else np.zeros(len(idx), int)
        for j, i in enumerate(idx):
            first = int(offset[j]) + encoded[i].response_start - 1  # the last prompt token
            cols = slice(first, first + lengths[i] + 1)
            head[i, : lengths[i] + 1] = tr[j, cols]
            for p, n in enumerate(names):
                q[n][i, : lengths[i] + 1] = qb[j, cols, p]
            if keep_hidden:
                hidden[i] = out.hidden[j, cols].float().cpu().numpy()
    tokens = [tokenizer.convert_ids_to_tokens(e.input_ids[e.response_start:]) for e in encoded]
    return TokenValues(q, head, lengths, tokens, hidden if keep_hidden else None)


def char_to_token(offsets: Sequence[tuple[int, int]], char: int) -> int | None:
    """Index of the token that covers character `char`, given a fast tokenizer's `offset_mapping` of the text.

    A character no token covers (whitespace some tokenizers drop) maps to the next token; past the last token,
    None."""
    for j, (start, end) in enumerate(offsets):
        if start <= char < end or start >= char:
            return j
    return None


def response_token_index(tokenizer, response: str, char: int | None) -> int | None:
    """The index, among the response's tokens as `encode` tokenises them, of the token holding character `char`
    of `response` (e.g. a verifier's first-error offset); None for None or past the end.

    The response is tokenised on its own, as `encode` does, so the index is that of `TokenValues.tokens`, and the
    state after reading that token is column index + 1."""
    if char is None:
        return None
    if not 0 <= char < len(response):
        return None
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    return char_to_token(enc["offset_mapping"], char)
