"""The goal term and the step score of goal-guided decoding.

A goal is one or more prototypes with weights, G(h) = sum_k w_k cos(h, g_k) / sum_k |w_k| in [-1, 1] (a negative
weight steers away from a prototype). A step scores as Xie et al. combine confidence and probability,
s = c^r * p^(1 - r) with c = (1 + G) / 2 and r = 2^rho / (2^rho + 1) from the confidence ratio rho (rho = 0: equal
weight; rho -> -inf: policy only; rho -> +inf: goal only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class GoalTerm:
    """Several goal prototypes with weights: G(h) = sum_k w_k cos(h, g_k) / sum_k |w_k|, in [-1, 1].

    `vectors` (K, D), `weights` (K,), `names` the K prototype names."""

    name: str
    names: list[str]
    vectors: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_prototypes(cls, name: str, prototypes: dict, weights: dict[str, float]) -> "GoalTerm":
        """`prototypes`: prototype name -> `qvalues.Prototype`; `weights`: prototype name -> weight (non-zero)."""
        missing = [k for k in weights if k not in prototypes]
        if missing:
            raise KeyError(f"goal {name!r}: no prototype {missing}; available: {sorted(prototypes)}")
        if not weights or all(w == 0 for w in weights.values()):
            raise ValueError(f"goal {name!r}: needs at least one non-zero weight, got {weights}")
        names = list(weights)
        vecs = torch.stack([prototypes[k].vector.float() for k in names])
        return cls(name, names, vecs, torch.tensor([float(weights[k]) for k in names]))

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., D) -> goal term (...)."""
        h = F.normalize(hidden.float(), dim=-1)
        g = F.normalize(self.vectors.to(hidden.device), dim=-1)
        w = self.weights.to(hidden.device)
        return (h @ g.T) @ w / w.abs().sum()


def goal_ratio(confidence_ratio: float) -> float:
    """Xie et al.'s weight r of the confidence in s = c^r p^(1-r): r = 2^rho / (2^rho + 1); rho = 0 gives 0.5."""
    x = confidence_ratio * math.log(2.0)  # r = sigmoid(rho ln 2), written so that no power of 2 overflows
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def step_log_score(mean_logprob: torch.Tensor, goal: torch.Tensor, r: float, eps: float = 1e-6) -> torch.Tensor:
    """log s = r log c + (1 - r) log p with c = (1 + G) / 2: mean_logprob (C,) = log p, goal (C,) = G."""
    c = ((1.0 + goal) / 2.0).clamp(min=eps)
    return r * torch.log(c) + (1.0 - r) * mean_logprob if r > 0 else mean_logprob.clone()
