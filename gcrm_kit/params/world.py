"""Params pieces of the toy world: how the base corpus is written and how the toy policy is trained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class WorldParams:
    """The toy world: how the base model's corpus is made (see gcrm_kit.toyworld)."""

    corpus_size: int = 30000
    """number of (question, solution) examples the base policy is trained on"""
    corpus_mixture: dict[str, float] = field(default_factory=lambda: {
        "id": 0.4, "short_chain": 0.1, "long_chain": 0.2, "new_operator": 0.15, "verbal": 0.15})
    """weights of the problem distributions in the base corpus (names from toyworld.SPLITS): the base model
    knows every split; reward models are trained on `id` alone"""
    step_error_rate: float = 0.12
    """probability that a corpus solution's step is wrong"""
    operand_slip_share: float = 0.25
    """share of wrong steps that copy a wrong operand (the rest write a wrong result)"""
    correction_mark_rate: float = 0.5
    """share of erroneous corpus solutions whose wrong steps carry the correction mark '!'"""
    correction_mark_style: Literal["step", "state"] = "step"
    """which steps carry the mark: `step`, those whose own computation is wrong; `state`, every step after which
    the running value is wrong (the first wrong step and the ones carrying its error on)"""
    verdict_rate: float = 0.5
    """share of corpus solutions followed by a verdict '|Y' / '|N'"""


@dataclass
class PolicyParams:
    """The tiny Llama policy (also the reward models' initialisation) and its supervised fine-tuning."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    epochs: float = 3.0
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    verdict_loss_weight: float = 1.0
    """weight of the verdict token (the one after the EOS) in the language-modelling loss, relative to every
    other token's 1 (10 did not make the verdict learnt more often: docs/toy_world.md, "Which policies learn the verdict")"""
    min_verdict_auroc: float = 0.8
    """accept a trained policy only if its own verdict after the EOS tells right from wrong on fresh corpus-style
    `id` solutions with at least this AUROC (toyworld.policy.verdict_check); 0 accepts the first policy unchecked"""
    max_attempts: int = 3
    """policies tried (seeds seed, seed + 1, ...) before going on with the best one and a warning"""
