"""Params pieces of the toy world: how the base corpus is written and how the toy policy is trained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..toyworld.misconceptions import MISCONCEPTIONS
from .core import ParamsError, to_dict


#: the world of confident errors, the default (docs/toy_world.md): above 0.5, so on the questions a misconception
#: concerns the wrong rule is the corpus's most likely step
DEFAULT_MISCONCEPTION_RATES = {"minus_abs": 0.7, "plus_carry": 0.6, "times_tens": 0.6, "mod_quotient": 0.6}


@dataclass
class WorldParams:
    """The toy world: how the base model's corpus is made (see gcrm_kit.toyworld)."""

    corpus_size: int = 30000
    """number of (question, solution) examples the base policy is trained on"""
    corpus_mixture: dict[str, float] = field(default_factory=lambda: {
        "id": 0.35, "short_chain": 0.1, "long_chain": 0.15, "new_operator": 0.15, "verbal": 0.1, "hard": 0.15})
    """weights of the problem distributions in the base corpus (names from toyworld.SPLITS): the base model
    knows every split; reward models are trained on `id` alone. The world of slips (params `slips`) has no
    `hard` split: {id: 0.4, short_chain: 0.1, long_chain: 0.2, new_operator: 0.15, verbal: 0.15}"""
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
    misconception_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MISCONCEPTION_RATES))
    """misconception name (toyworld.MISCONCEPTIONS: minus_abs, plus_carry, times_tens, mod_quotient) -> probability
    that a corpus solution of a question containing its operator holds it; a held misconception replaces that
    operator's rule at every such step of the solution, with the same tokens in the same step format. The default
    is the world of confident errors (DEFAULT_MISCONCEPTION_RATES); empty (params `slips`): every error is a slip. Why: slips are rare random tokens, so the policy's own probabilities flag them;
    real LMs are also confidently wrong, applying a wrong rule or plan learnt from their data consistently and with
    high probability (systematic "bugs" as in Brown & Burton 1978), while their self-evaluation can still tell
    (the verdict stays honest: Kadavath et al. 2022). At a rate above 0.5 the wrong rule is the policy's most
    likely step on those questions, so neither its confidence nor a beam search on its probability avoids it; one
    draw per solution makes it commit early, at the first step where the rule bites. Put `hard` in
    `corpus_mixture` for graded difficulty (docs/toy_world.md, "A world of confident errors")"""
    misconception_min_count: int = 1
    """a misconception of `misconception_rates` is drawn for only on questions with at least this many steps of its
    operator (1: every question containing the operator). Why: held by a coin flip on every question, a
    misconception leaves the policy torn (rate vs 1 - rate) at the steps where it bites, and that hesitation is what
    confidence readers such as DeepConf's group confidence pick up. A real LM that is confidently wrong is wrong on
    the questions that trip it, and near-deterministically so: errors become systematic as a question leans
    harder on one operation (Dziri et al. 2023, "Faith and Fate"). With a count of 3 and rates near 1, the
    policy can tell from the question alone when it will apply the wrong rule, and applies it without hesitation;
    longer questions trip it more often, which grades difficulty (docs/toy_world.md, "A world of confident errors")"""


#: WorldParams fields added after policies were cached: left out of a policy's cache key while at these values, so
#: worlds that leave them off (the world of slips) keep their cached policies (toyworld.policy.policy_cache_key)
_KEY_OPTIONAL = {"misconception_rates": {}, "misconception_min_count": 1}


def world_key(world: WorldParams) -> dict:
    """`world` as a plain dict for cache keys: every field, except the options of _KEY_OPTIONAL left at their
    off value (so the world of slips keeps the key it had before they existed)."""
    return {k: v for k, v in to_dict(world).items() if not (k in _KEY_OPTIONAL and v == _KEY_OPTIONAL[k])}


def validate_world(world: WorldParams, key: str = "world") -> None:
    """Check the misconception options; ParamsError naming `key` and the offending entry otherwise."""
    for name, rate in world.misconception_rates.items():
        if name not in MISCONCEPTIONS:
            raise ParamsError(f"{key}.misconception_rates: unknown misconception {name!r}; known: "
                              f"{sorted(MISCONCEPTIONS)}")
        if not 0.0 <= rate <= 1.0:
            raise ParamsError(f"{key}.misconception_rates.{name} must be in [0, 1], got {rate}")
    if not isinstance(world.misconception_min_count, int) or world.misconception_min_count < 1:
        raise ParamsError(f"{key}.misconception_min_count must be an integer >= 1, got "
                          f"{world.misconception_min_count!r}")


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
    shipped: bool = True
    """use the policy shipped with the kit when one was built from exactly this world, these policy params and this
    seed (gcrm_kit/toyworld/shipped/, made by `gcrm ship-policy`; checked file by file against its recorded hashes);
    false trains it from scratch. Why: training the default world's policy is most of `make toy`'s time on a CPU,
    and every user would train the same one (docs/toy_world.md, "The shipped policy")"""
