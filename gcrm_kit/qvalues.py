"""Goal prototypes and Q-values.

A prototype g is the mean of final-layer states over a labelled set of responses (by default the last token,
the EOS, of the preferred training responses, as the released code builds it). The Q-value of a prefix
towards g is cos(h_t, g). Prototypes are saved beside the checkpoint they come from, with their provenance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import encode, pad_batch
from .models import last_token_index, reward_forward
from .runs import atomic_write_json

PROTOTYPE_DIR = "prototypes"


@dataclass
class Prototype:
    """A named goal vector (D,) with where it came from."""

    name: str
    vector: torch.Tensor
    provenance: dict = field(default_factory=dict)

    def save(self, model_dir: str | Path) -> Path:
        """Save as <model_dir>/prototypes/<name>.pt with <name>.json beside it. Returns the .pt path."""
        d = Path(model_dir) / PROTOTYPE_DIR
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


@torch.no_grad()
def pooled_states(model, tokenizer, prompts: list[str], responses: list[str], pooling: str = "last",
                  batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """Final-layer states (N, D) pooled per sequence: `last` (the EOS), `mean` (over response tokens and EOS),
    or `random` (one response token drawn uniformly, seeded; the paper's ablation)."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for s in tqdm(range(0, len(prompts), batch_size), desc=f"{pooling}-pooled states", leave=False):
        seqs = [encode(tokenizer, p, r) for p, r in zip(prompts[s:s + batch_size], responses[s:s + batch_size])]
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        h = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"]).hidden.float()
        rows = torch.arange(h.shape[0], device=dev)
        if pooling == "last":
            out.append(h[rows, last_token_index(b["attention_mask"])])
        elif pooling == "mean":
            m = b["response_mask"].unsqueeze(-1).float()
            out.append((h * m).sum(1) / m.sum(1))
        elif pooling == "random":
            m = b["response_mask"].float()
            idx = torch.multinomial(m.cpu(), 1, generator=gen).squeeze(-1).to(dev)
            out.append(h[rows, idx])
        else:
            raise ValueError(f"unknown pooling {pooling!r}; expected 'last', 'mean' or 'random'")
    return torch.cat(out).cpu()


def build_prototype(model, tokenizer, prompts: list[str], responses: list[str], name: str,
                    pooling: str = "last", provenance: dict | None = None, batch_size: int = 128) -> Prototype:
    """Mean pooled state over a labelled set of (prompt, response): the goal vector g (D,)."""
    if not prompts:
        raise ValueError(f"prototype {name!r}: empty labelled set")
    states = pooled_states(model, tokenizer, prompts, responses, pooling, batch_size)
    prov = {"pooling": pooling, "count": len(prompts), "layer": "final (after norm)", **(provenance or {})}
    return Prototype(name, states.mean(0), prov)


def q_values(hidden: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
    """Q_t = cos(h_t, g): hidden (..., D), prototype (D,) -> (...)."""
    return F.cosine_similarity(hidden.float(), prototype.to(hidden.device).float().expand_as(hidden), dim=-1)
