"""The comparison (`compare_methods`): every method on the same prompts, for every reward-model seed, with the
compute each used, and the gains of guided decoding over each baseline paired by seed (`guided_gains`).

Methods: plain sampling (the SFT baseline), best-of-N by the final reward at matched policy compute (and reranked
by each goal term), beam search on the policy's probability alone (what the search gives without a goal),
goal-guided decoding towards each target, in the toy world the same search guided by an exact process value
(what a goal term that is always right mid-solution reaches), and, when the RM run has a process reward model, the
same search guided by its probability that each step is right (`prm_guide`). Compute: policy tokens sampled,
policy tokens processed (the sampled ones plus the prompt/prefix tokens every step conditions on, counted as a
decoder without a policy cache encodes them: each beam's prefix once per candidate at every step; the decoder here
keeps the policy's key/value cache and runs only the new tokens, so its seconds are lower than that count
suggests), tokens run through the reward model (or the process reward model), and wall-clock seconds. Best-of-N's
N is matched on policy tokens *sampled* only; the processed count is reported beside it, not matched. Only the
attributes the judge scores are reported; correctness is reported beside each goal's aim when the judge scores
`correct`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..evaluation import mean_std
from .baselines import pick, sample_solutions, score_samples
from .beam import decode_in_batches
from .context import ContextScorer, ExactPrefixScorer, exact_goal
from .judges import Judge, attribute_rates
from .labels import label_table
from .prm_guide import METHOD as PRM_METHOD, find_guide, prm_goal
from .prototypes import build_prototypes, goal_terms, prototype_diagnostics
from .report import SteeringResult, summarise
from .setup import SteeringSetup


class Timer:
    """Wall-clock seconds of a block: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


def _rates(judge: Judge, prompts: list[str], responses: list[str]) -> dict[str, float]:
    return attribute_rates(judge(prompts, responses))


def _row(method: str, seed: int, prompts: list[str], responses: list[str], judge: Judge, policy_tokens: list[int],
         policy_processed: list[int], rm_tokens: list[int], seconds: float, rm: str = "", target: str = "",
         **extra) -> dict:
    """One result row: attribute rates, and per prompt the policy tokens sampled (`policy_tokens`, what best-of-N's
    N is matched on), the policy tokens processed (`policy_tokens_processed`: sampled + prompt/prefix tokens
    encoded), reward-model tokens and seconds."""
    return {"method": method, "reward_model": rm, "target": target, "seed": seed,
            **{f"rate_{k}": v for k, v in _rates(judge, prompts, responses).items()},
            "policy_tokens": float(np.mean(policy_tokens)),
            "policy_tokens_processed": float(np.mean(policy_processed)), "rm_tokens": float(np.mean(rm_tokens)),
            "seconds": seconds, "seconds_per_prompt": seconds / max(1, len(prompts)), **extra}


def compare_methods(p, run, setup: SteeringSetup) -> SteeringResult:
    """Every method on the same prompts, for every seed: plain sampling, beam search on the policy alone, guided
    decoding with each reward model towards each target, then best-of-N (N matched to the policy tokens the guided
    decoder *sampled*, unless `p.best_of_n` is set; the prefix tokens it conditions on at every step are reported as
    `policy_tokens_processed` but not matched) reranked by each reward model's final reward and by each goal term.
    Prototypes are built and saved per reward model and seed in run/prototypes/<rm>_seed<k>/. The
    labelled examples are judged once (`label_table`) and every response through the setup's `CachedJudge`.
    Writes responses.json."""
    judge = setup.judge(p.judge)
    labels = label_table(p, setup)
    settings = p.beam
    policy, tok = setup.load_policy()
    prompts = setup.prompts
    suppress = setup.suppress_tokens
    max_new = settings.max_steps * settings.max_step_tokens
    sample_kw = {"batch_size": p.sequence_batch_size} if p.sequence_batch_size else {}
    score_kw = dict(sample_kw)
    rows, responses, diagnostics, bon_n = [], {}, {}, {}
    prm, prm_left_out = find_guide(p, setup)
    for seed in setup.seeds:
        dseed = p.seed * 1000 + seed
        with Timer() as t:
            plain = sample_solutions(policy, tok, prompts, 1, settings.temperature, max_new, dseed, suppress,
                                     **sample_kw)
        plain_resp = [r[0] for r in plain.responses]
        rows.append(_row("plain", seed, prompts, plain_resp, judge, plain.policy_tokens, plain.policy_tokens_processed,
                         [0] * len(prompts), t.seconds))
        responses.setdefault("plain", {})[seed] = plain_resp
        with Timer() as t:
            dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, seed=dseed, suppress_tokens=suppress,
                                    desc="beam search, policy only")
        rows.append(_row("beam_policy_only", seed, prompts, [d.response for d in dec], judge,
                         [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec], [0] * len(prompts),
                         t.seconds))
        responses.setdefault("beam_policy_only", {})[seed] = [d.response for d in dec]
        if p.exact_oracle:
            with Timer() as t:
                dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, ExactPrefixScorer(tok),
                                        exact_goal, seed=dseed, suppress_tokens=suppress, desc="guided: exact oracle")
            rows.append(_row("guided_oracle", seed, prompts, [d.response for d in dec], judge,
                             [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec],
                             [0] * len(prompts), t.seconds, "", "error_free"))
            responses.setdefault("guided_oracle", {})[seed] = [d.response for d in dec]
        if prm is not None:  # the process reward model's step probability in the goal term's place
            with Timer() as t:
                dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size,
                                        prm.scorer(seed, setup.device, tok.get_vocab()), prm_goal, seed=dseed,
                                        suppress_tokens=suppress, desc=f"guided: process reward model {prm.name}")
            rows.append(_row(PRM_METHOD, seed, prompts, [d.response for d in dec], judge,
                             [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec],
                             [d.rm_tokens for d in dec], t.seconds, prm.name, "",
                             truncated=float(np.mean([d.truncated for d in dec]))))
            responses.setdefault(f"{PRM_METHOD}/{prm.name}", {})[seed] = [d.response for d in dec]
        models, guided_tokens = {}, []
        for name in setup.reward_models:
            model, rtok = setup.load_reward_model(name, seed)
            if rtok.get_vocab() != tok.get_vocab():
                raise ValueError(f"reward model {name} seed {seed} does not share the policy's tokenizer; the decoder "
                                 "passes token ids from one to the other")
            protos = build_prototypes(p, setup, model, rtok, name, seed, run.dir / "prototypes" / f"{name}_seed{seed}",
                                      labels=labels)
            goals = goal_terms(p, protos)
            diagnostics[f"{name}_seed{seed}"] = prototype_diagnostics(p, setup, model, rtok, goals)
            models[name] = (model, goals)
            for target, goal in goals.items():
                scorer = ContextScorer(model, use_cache=p.use_rm_cache, pooling=p.step_pooling)
                with Timer() as t:
                    dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, scorer, goal, seed=dseed,
                                            suppress_tokens=suppress, desc=f"guided: {name} -> {target}")
                guided_tokens += [d.policy_tokens for d in dec]
                rows.append(_row("guided", seed, prompts, [d.response for d in dec], judge,
                                 [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec],
                                 [d.rm_tokens for d in dec], t.seconds, name, target,
                                 truncated=float(np.mean([d.truncated for d in dec])),
                                 final_goal=float(np.nanmean([d.final_goal for d in dec]))))
                responses.setdefault(f"guided/{name}/{target}", {})[seed] = [d.response for d in dec]
        # N is matched on policy tokens *sampled* (not on the prefix tokens the step-level decoder conditions on)
        n = p.best_of_n or max(1, int(round(np.mean(guided_tokens) / max(1e-9, np.mean(plain.policy_tokens)))))
        bon_n[seed] = n
        with Timer() as t_sample:
            sampled = sample_solutions(policy, tok, prompts, n, settings.temperature, max_new, dseed + 1, suppress,
                                       **sample_kw)
        for name, (model, goals) in models.items():
            with Timer() as t:
                score_samples(model, tok, sampled, **score_kw)
            secs = t_sample.seconds + t.seconds
            resp = pick(sampled, sampled.rewards)
            rows.append(_row("best_of_n", seed, prompts, resp, judge, sampled.policy_tokens,
                             sampled.policy_tokens_processed, sampled.rm_tokens, secs, name, "", n=n))
            responses.setdefault(f"best_of_n/{name}", {})[seed] = resp
            for target, goal in goals.items():
                resp = pick(sampled, goal(sampled.final_hidden))
                rows.append(_row("best_of_n_goal", seed, prompts, resp, judge, sampled.policy_tokens,
                                 sampled.policy_tokens_processed, sampled.rm_tokens, secs, name, target, n=n))
                responses.setdefault(f"best_of_n_goal/{name}/{target}", {})[seed] = resp
    summary = summarise(rows)
    gains = guided_gains(rows, p.targets)
    result = SteeringResult(run.dir, rows, summary, gains, diagnostics, bon_n, responses,
                            left_out={} if prm is not None else {PRM_METHOD: prm_left_out})
    run.write_json("responses.json", {"prompts": prompts, "responses": responses})
    return result


def guided_gains(rows: list[dict], targets) -> list[dict]:
    """For each guided run (reward model, target): the gain on the target's aim attribute, and on correctness when
    the judge scores `correct`, over plain sampling, best-of-N by reward (same reward model), best-of-N by the same
    goal, and beam search on the policy alone, paired by seed (mean and std of the per-seed differences, in points,
    and relative in %), with the compute ratios (policy tokens sampled and processed, reward-model tokens,
    seconds). `attributes` lists the attributes of each entry."""
    aims = {t.name: t.aim for t in targets}

    def find(method, seed, rm="", target=""):
        return next(r for r in rows if r["method"] == method and r["seed"] == seed and r["reward_model"] == rm
                    and r["target"] == target)

    out = []
    for rm, target in dict.fromkeys((r["reward_model"], r["target"]) for r in rows if r["method"] == "guided"):
        gs = [r for r in rows if r["method"] == "guided" and r["reward_model"] == rm and r["target"] == target]
        for base, brm, btarget in (("plain", "", ""), ("best_of_n", rm, ""), ("best_of_n_goal", rm, target),
                                   ("beam_policy_only", "", "")):
            pairs = [(g, find(base, g["seed"], brm, btarget)) for g in gs]
            entry = {"reward_model": rm, "target": target, "aim": aims[target], "baseline": base,
                     "n_seeds": len(pairs)}
            scored = [a for a in dict.fromkeys([aims[target], "correct"])
                      if all(f"rate_{a}" in r for pair in pairs for r in pair)]
            if aims[target] not in scored:
                raise KeyError(f"target {target!r}: the judge gave no {aims[target]!r} (its aim) to every row")
            entry["attributes"] = scored
            for attr in scored:
                k = f"rate_{attr}"
                diff = [g[k] - b[k] for g, b in pairs]
                rel = [100.0 * (g[k] - b[k]) / b[k] if b[k] > 0 else float("nan") for g, b in pairs]
                m, s, _ = mean_std(diff)
                mr, sr, _ = mean_std(rel)
                entry[attr] = {"guided": mean_std([g[k] for g, _ in pairs])[0],
                               "baseline": mean_std([b[k] for _, b in pairs])[0],
                               "gain_points": {"mean": 100 * m, "std": 100 * s}, "gain_relative_pct": {"mean": mr,
                                                                                                       "std": sr}}
            for k in ("policy_tokens", "policy_tokens_processed", "rm_tokens", "seconds"):
                if not all(k in r for pair in pairs for r in pair):
                    continue
                ratios = [g[k] / b[k] if b[k] > 0 else float("nan") for g, b in pairs]
                entry[f"{k}_ratio"] = mean_std(ratios)[0]
            tot = [(g["policy_tokens"] + g["rm_tokens"]) / (b["policy_tokens"] + b["rm_tokens"]) for g, b in pairs]
            entry["total_tokens_ratio"] = mean_std(tot)[0]
            out.append(entry)
    return out
