"""Reward-model losses: Bradley-Terry and the goal-conditioned contrastive term (PAPER.md section 3).

Shapes: B pairs, T tokens, D hidden size. Hidden states are the final-layer states (after the final norm) the
scalar head reads. Response masks are 1 on the response tokens and the final EOS, 0 on prompt and padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r+ - r-) over pairs. Inputs (B,), output a scalar."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def response_span(response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) response mask -> (start index, length), each (B,). The response must be one contiguous span:
    raises ValueError for a row without response tokens or with more than one run of them."""
    length = response_mask.sum(-1)
    if (length == 0).any():
        raise ValueError("a sequence has no response tokens; the contrastive term needs at least one")
    on = response_mask != 0
    runs = on[:, :1].sum(-1) + (on[:, 1:] & ~on[:, :-1]).sum(-1)  # starts of runs of 1s per row
    if (runs > 1).any():
        rows = torch.nonzero(runs > 1).flatten().tolist()
        raise ValueError(f"the response mask of row(s) {rows[:10]} is not one contiguous span (it has gaps); "
                         "contrastive positions are drawn between a response's first and last token")
    start = response_mask.to(torch.long).argmax(-1)  # first 1
    return start, length


def fractions_to_positions(u: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Map fractions u (B, K) in [0, 1] of each response to token indices (B, K).

    Position = start + floor(u * length), capped at the last response token, so u = 1 is the EOS. The map is
    non-decreasing in u, which keeps a goal drawn at a larger fraction at or after its source.
    """
    offset = torch.floor(u * length[:, None].to(u.dtype)).long()
    offset = torch.minimum(offset, (length - 1)[:, None])
    return start[:, None] + offset


def _scale(u: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    lo, hi = rng
    return lo + u * (hi - lo)


@dataclass
class ContrastiveDraw:
    """Token positions drawn for one batch: (B, S) positive sources and goals in the chosen response,
    (B, U) negative sources in the chosen response and negative goals in the rejected one."""

    pos_source: torch.Tensor
    pos_goal: torch.Tensor
    neg_source: torch.Tensor
    neg_goal: torch.Tensor


def draw_positions(
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    n_positive: int,
    n_negative: int,
    source_range: tuple[float, float] = (0.0, 1.0),
    goal_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> ContrastiveDraw:
    """Draw contrastive positions for B pairs, only ever among response tokens.

    Positive draws: two uniforms per draw, sorted (u1 <= u2); the source sits at fraction u1 of `source_range`
    and the goal at fraction u2 of `goal_range`. When goal_range starts and ends no earlier than source_range,
    every goal is at or after its source. Negative draws: sources uniform over `source_range` of the chosen
    response, goals uniform over `goal_range` of the rejected one.
    """
    dev = chosen_mask.device
    B = chosen_mask.shape[0]
    cs, cl = response_span(chosen_mask)
    rs, rl = response_span(rejected_mask)
    u = torch.rand((B, n_positive, 2), generator=generator, device=dev).sort(-1).values
    pos_src = fractions_to_positions(_scale(u[..., 0], source_range), cs, cl)
    pos_goal = fractions_to_positions(_scale(u[..., 1], goal_range), cs, cl)
    v = torch.rand((B, n_negative, 2), generator=generator, device=dev)
    neg_src = fractions_to_positions(_scale(v[..., 0], source_range), cs, cl)
    neg_goal = fractions_to_positions(_scale(v[..., 1], goal_range), rs, rl)
    return ContrastiveDraw(pos_src, pos_goal, neg_src, neg_goal)


def _gather(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """h (B, T, D), idx (B, K) -> (B, K, D)."""
    return torch.gather(h, 1, idx[..., None].expand(-1, -1, h.shape[-1]))


def _pair_prob(src: torch.Tensor, goals: torch.Tensor, variant: str) -> torch.Tensor:
    """Mean sigmoid(cos) between sources (B, K, D) and goals (B, M, D) -> (B,).

    `cosine`: over all K x M (source, goal) pairs. `cosine_avg`: goals averaged into one vector first."""
    src = F.normalize(src.float(), dim=-1)
    if variant == "cosine":
        cos = src @ F.normalize(goals.float(), dim=-1).transpose(1, 2)  # (B, K, M)
    elif variant == "cosine_avg":
        g = F.normalize(goals.float().mean(1, keepdim=True), dim=-1)
        cos = src @ g.transpose(1, 2)  # (B, K, 1)
    else:
        raise ValueError(f"unknown contrastive variant {variant!r}; expected 'cosine' or 'cosine_avg'")
    return torch.sigmoid(cos).mean(dim=(1, 2))


@dataclass
class ContrastiveOutput:
    loss: torch.Tensor  # scalar
    pi_pos: torch.Tensor  # (B,)
    pi_neg: torch.Tensor  # (B,)


def contrastive_loss(
    h_chosen: torch.Tensor,
    h_rejected: torch.Tensor,
    draw: ContrastiveDraw,
    variant: str = "cosine",
) -> ContrastiveOutput:
    """L_C = mean over pairs of -log pi+ - log(1 - pi-).

    pi+ is the mean sigmoid(cos) between positive sources and goals (both in the chosen response), pi- the same
    between negative sources (chosen) and negative goals (rejected). h_*: (B, T, D) final states.
    Without a temperature, sigmoid(cos) lies in [0.27, 0.73], so L_C >= 2 * -log(0.731) ~ 0.63.
    """
    pi_pos = _pair_prob(_gather(h_chosen, draw.pos_source), _gather(h_chosen, draw.pos_goal), variant)
    pi_neg = _pair_prob(_gather(h_chosen, draw.neg_source), _gather(h_rejected, draw.neg_goal), variant)
    loss = (-torch.log(pi_pos) - torch.log1p(-pi_neg)).mean()
    return ContrastiveOutput(loss, pi_pos, pi_neg)


# ------------------------------------------------------------------------------------------------ GRM
# Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs" (NeurIPS 2024):
# keep a language-model head on the same final states the reward head reads, and regularise with a text-generation
# loss so the new reward head does not distort them.

GRM_REGULARISERS = ("sft", "dpo", "dpo_noref")


def response_logps(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token log-probabilities over the response tokens (and the EOS), and their count.

    logits (B, T, V) from the LM head at every position, input_ids and response_mask (B, T).
    Token t is predicted by the logits at t - 1. Returns (sum_logp (B,), n_tokens (B,))."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = torch.gather(logp, 2, input_ids[:, 1:, None]).squeeze(-1)
    mask = response_mask[:, 1:].to(tok.dtype)
    return (tok * mask).sum(-1), mask.sum(-1)


def grm_regulariser(kind: str, logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, n_chosen: torch.Tensor,
                    ref_chosen: torch.Tensor | None = None, ref_rejected: torch.Tensor | None = None,
                    beta: float = 0.1) -> torch.Tensor:
    """GRM's text-generation regularisers, each a scalar averaged over pairs. Inputs are (B,) summed response
    log-probabilities (`response_logps`) under the trained model and, for `dpo`, the frozen reference.

    - `sft`: mean per-token negative log-likelihood of the chosen response;
    - `dpo`: -log sigmoid(beta * [(lp+ - ref+) - (lp- - ref-)]);
    - `dpo_noref`: -log sigmoid(beta * (lp+ - lp-)).
    """
    if kind == "sft":
        return (-logp_chosen / n_chosen.clamp(min=1)).mean()
    if kind == "dpo":
        if ref_chosen is None or ref_rejected is None:
            raise ValueError("the 'dpo' regulariser needs reference log-probabilities")
        return -F.logsigmoid(beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))).mean()
    if kind == "dpo_noref":
        return -F.logsigmoid(beta * (logp_chosen - logp_rejected)).mean()
    raise ValueError(f"unknown GRM regulariser {kind!r}; expected one of {GRM_REGULARISERS}")
