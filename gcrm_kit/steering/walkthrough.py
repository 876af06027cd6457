"""The notebook's two close looks at the decoder: the reward model's cache checked against re-scoring from scratch
(`check_cache`), and one prompt decoded with its beam printed step by step (`worked_example`).
"""

from __future__ import annotations

from .beam import format_trace, guided_decode
from .context import ContextScorer
from .goal import goal_ratio
from .labels import label_table
from .prototypes import build_prototypes, goal_terms
from .setup import SteeringSetup


def check_cache(p, setup: SteeringSetup, n_prompts: int = 8) -> dict:
    """Guided decoding with and without the reward model's cache on the first prompts (first reward model, seed
    and target, same sampling seed): the scores must agree and the responses be the same. Returns the largest
    score difference, whether every response matched, and the reward-model tokens of each."""
    policy, tok = setup.load_policy()
    name, seed = setup.reward_models[0], setup.seeds[0]
    model, rtok = setup.load_reward_model(name, seed)
    goal = goal_terms(p, build_prototypes(p, setup, model, rtok, name, seed, labels=label_table(p, setup)))[
        p.targets[0].name]
    prompts = setup.prompts[:n_prompts]
    outs = {}
    for use_cache in (True, False):
        scorer = ContextScorer(model, use_cache=use_cache, pooling=p.step_pooling)
        outs[use_cache] = guided_decode(policy, tok, prompts, p.beam, scorer, goal, seed=p.seed,
                                        suppress_tokens=setup.suppress_tokens)
    a, b = outs[True], outs[False]
    return {"prompts": len(prompts), "reward_model": name, "seed": seed, "target": p.targets[0].name,
            "max_abs_score_diff": max(abs(x.score - y.score) for x, y in zip(a, b)),
            "same_responses": all(x.response == y.response for x, y in zip(a, b)),
            "rm_tokens_cached": sum(x.rm_tokens for x in a), "rm_tokens_full": sum(y.rm_tokens for y in b)}


def worked_example(p, setup: SteeringSetup, prompt_index: int = 0, reward_model: str | None = None,
                   target: str | None = None, width: int | None = None) -> str:
    """Decode one prompt with the first reward model, seed and target (or those named) and return the beam's
    evolution as text (`format_trace`, `width` characters of each candidate: default 34 in the toy world, 72 on
    real data), followed by the answer and the judge's scores."""
    policy, tok = setup.load_policy()
    name = setup.reward_model_name(reward_model) if reward_model else setup.reward_models[0]
    seed = setup.seeds[0]
    model, rtok = setup.load_reward_model(name, seed)
    tname = target or p.targets[0].name
    goal = goal_terms(p, build_prototypes(p, setup, model, rtok, name, seed, labels=label_table(p, setup)))[tname]
    prompt = setup.prompts[prompt_index]
    trace: list = []
    dec = guided_decode(policy, tok, [prompt], p.beam, ContextScorer(model, pooling=p.step_pooling), goal,
                        seed=p.seed, suppress_tokens=setup.suppress_tokens, trace_prompts=(0,), trace=trace)[0]
    scores = setup.judge(p.judge)([prompt], [dec.response])[0]
    head = (f"reward model {name} (seed {seed}), goal {tname!r} = "
            + " ".join(f"{w:+g}*{k}" for k, w in next(t for t in p.targets if t.name == tname).weights.items())
            + f", r = {goal_ratio(p.beam.confidence_ratio):.2f}")
    width = width or (34 if setup.kind == "toy" else 72)
    return (head + "\n" + format_trace(trace, prompt, width) + f"\n\nanswer: {dec.response}   scores: {scores}"
            + f"\npolicy tokens sampled: {dec.policy_tokens} (processed, counting each prefix once per candidate at every step:"
            f" {dec.policy_tokens_processed}), reward-model tokens: {dec.rm_tokens}")
