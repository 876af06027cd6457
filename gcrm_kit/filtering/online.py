"""Online pruning on the test questions: samples are stopped while they are generated, at each pruning method's
chosen threshold and for every rm seed, and the tokens actually generated and the wall-clock time are measured
against generating every sample (`evaluate_online`)."""

from __future__ import annotations

import time

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..device import resolve_device
from ..models import load_reward_model
from ..params import FilteringParams, OnlineParams, ParamsError
from ..qvalues import Prototype
from ..toyworld import MARK_CHARS
from .cached_decoding import decode_pruned
from .decoding import generate_pruned
from .methods import PRUNING, REWARD_MODELS
from .offline import OfflineResult
from .pruning import evaluate_pruning
from .samples import SampleSet, ends_with_eos
from .scorers import CutScorer, RewardModelScorer
from .scoring import score_sample_set
from .setup import RMSetup


def online_possible(p: FilteringParams, setup: RMSetup) -> bool:
    """Online pruning needs the policy and the toy world's verifier for what it generates: a toy-world run of
    notebook 01 and no `generations` file."""
    return p.online.enabled and not p.generations and setup.rm_params.data.kind == "toy"


def run_loop(o: OnlineParams, policy, tokenizer, prompts: list[str], uids: list[int], scorer=None,
             threshold: float = float("-inf"), chunk_size: int = 8, **common):
    """One online run with the loop `o.loop` names (`OnlineParams`): the cached decoding loop reading at every
    `chunk_size` tokens and at `o.score_at`, or one `generate` call per chunk. `common`: the sampling arguments
    both take. Returns their `PrunedGeneration`."""
    if o.loop == "cached":
        return decode_pruned(policy, tokenizer, prompts, uids, scorer=scorer, threshold=threshold,
                             score_every=chunk_size, score_at=o.score_at or None, **common)
    return generate_pruned(policy, tokenizer, prompts, uids, scorer=scorer, threshold=threshold,
                           chunk_size=chunk_size, **common)


def _fastest(xs: list[float]) -> float:
    # on a shared machine other work only ever adds time, so the fastest repeat is the best estimate of what a
    # method costs by itself (a median of three still moves by 5x when a neighbour runs); all repeats are kept
    return float(np.min(xs))


def evaluate_online(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet], offline: OfflineResult
                    ) -> list[dict]:
    """Online pruning on the test questions, for every pruning method `online.methods` names (all when empty) at its
    chosen threshold and every rm seed. Raises ParamsError naming an unknown method.

    Each run generates the test samples (same uids, so the same samples as offline) and stops those whose score
    falls below the threshold. Reported: policy tokens actually generated, tokens the scorer read, wall-clock
    (the fastest of `online.repeats` runs, interleaved), vote accuracy of the online run, and whether its decisions
    and kept responses equal the offline ones. References: ``generate_all`` (one plain `generate` call per batch,
    what sampling usually is) and ``none`` (the same loop, `online.loop`, without a scorer); best-of-N and weighted
    voting cost ``none`` plus scoring every finished sample with their reward model. Returns one row per run."""
    test = samples["test"]
    o = p.online
    unknown = sorted(set(o.methods) - set(PRUNING))
    if unknown:
        raise ParamsError(f"online.methods: unknown pruning method(s) {unknown}; expected names of {sorted(PRUNING)}")
    online_methods = {m: v for m, v in PRUNING.items() if not o.methods or m in o.methods}
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(resolve_device(p.device))
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    prompts = [r.prompt for r in test.records]
    uids = [int(u) for u in test.uids]
    row_of = {u: i for i, u in enumerate(uids)}
    common = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=p.seed, batch_size=o.batch_size,
                  suppress_tokens=list(MARK_CHARS), skip_tokens=p.skip_tokens)
    expected = [tokenizer(r.response, add_special_tokens=False)["input_ids"]
                + ([tokenizer.eos_token_id] if ends_with_eos(r) else []) for r in test.records]

    rms = {}
    for which in REWARD_MODELS:
        rms[which] = []
        for d in setup.model_dirs[which]:
            model, _ = load_reward_model(d)
            model.to(policy.device)
            rms[which].append((model, Prototype.load(d, "correct").vector))

    # every run of every seed, interleaved over the repeats so that a slow spell of the machine hits them all
    jobs: dict[tuple[str, int], tuple] = {("generate_all", -1): (None, float("-inf"), p.max_new_tokens),
                                          ("none", -1): (None, float("-inf"), o.chunk_size)}
    for si in range(len(setup.rm_seeds)):
        for method, (which, signal) in online_methods.items():
            model, proto = rms[which][si]
            jobs[(method, si)] = (lambda m=model, g=proto, s=signal: RewardModelScorer(m, s, g),
                                  offline.chosen[(method, si)]["threshold"], o.chunk_size)
        cuts = {uids[i]: int(t) for i, t in enumerate(offline.chosen[("random", si)]["prune_at"]) if t >= 0}
        jobs[("random", si)] = (lambda c=cuts: CutScorer(c), 0.0, o.chunk_size)
    seconds: dict[tuple, list[float]] = {j: [] for j in jobs}
    score_seconds: dict[tuple, list[float]] = {(w, si): [] for w in REWARD_MODELS
                                               for si in range(len(setup.rm_seeds))}
    first: dict = {}
    for rep in range(o.repeats):
        for job, (make, tau, chunk) in jobs.items():
            if job[0] == "generate_all":  # the reference: one plain `generate` call per batch, whatever the loop
                gen = generate_pruned(policy, tokenizer, prompts, uids, chunk_size=chunk, desc="online generate_all",
                                      **common)
            else:
                gen = run_loop(o, policy, tokenizer, prompts, uids, scorer=make() if make else None, threshold=tau,
                               chunk_size=chunk, desc=f"online {job[0]}", **common)
            extra_s, extra_tok = 0.0, 0
            if p.all_pruned == "unfiltered" and make is not None:
                # the fallback needs every sample of an all-pruned question: generate them again, in full
                gone = _all_pruned_questions(test, gen, row_of)
                if gone:
                    idx = [i for i, q in enumerate(test.question) if q in gone]
                    again = run_loop(o, policy, tokenizer, [prompts[i] for i in idx], [uids[i] for i in idx],
                                     chunk_size=chunk, desc="online fallback", **common)
                    extra_s, extra_tok = again.seconds, again.policy_tokens
            seconds[job].append(gen.seconds + extra_s)
            if rep == 0:
                first[job] = (gen, extra_tok)
        # best-of-N and weighted voting score every finished sample once with their reward model
        for (which, si) in score_seconds:
            model, proto = rms[which][si]
            t0 = time.perf_counter()
            score_sample_set(model, tokenizer, proto, test, p.batch_size, desc=f"scoring test ({which})")
            score_seconds[(which, si)].append(time.perf_counter() - t0)
    ref_tokens = first[("none", -1)][0].policy_tokens
    ref_s, hf_s = _fastest(seconds[("none", -1)]), _fastest(seconds[("generate_all", -1)])
    rows = []
    for (method, si), (gen, extra_tok) in first.items():
        prune_at = np.full(len(uids), -1)
        for u, t in zip(gen.uids, gen.pruned_at):
            prune_at[row_of[u]] = t
        same = [gen.response_ids[j] == expected[row_of[u]] for j, u in enumerate(gen.uids) if gen.pruned_at[j] < 0]
        ev = evaluate_pruning(test, prune_at, p.tie_break, p.all_pruned)
        off = offline.chosen.get((method, si))
        agree = float(np.mean(prune_at == off["prune_at"])) if off is not None else float(np.mean(prune_at < 0))
        tokens = gen.policy_tokens + extra_tok
        sec = _fastest(seconds[(method, si)])
        rows.append({"method": method, "rm_seed": setup.rm_seeds[si] if si >= 0 else None,
                     "threshold": None if off is None else off["threshold"],
                     "chunk_size": jobs[(method, si)][2], "policy_tokens": tokens, "scorer_tokens": gen.scorer_tokens,
                     "share_tokens_saved": 1 - tokens / ref_tokens, "seconds": sec,
                     "seconds_all": seconds[(method, si)], "share_seconds_saved": 1 - sec / ref_s,
                     "share_seconds_saved_vs_generate_all": 1 - sec / hf_s,
                     "accuracy": ev["accuracy"], "share_pruned": ev["share_pruned"],
                     "decisions_match_offline": agree,
                     "kept_responses_match_offline": float(np.mean(same)) if same else float("nan")})
    # best-of-N and weighted voting write every sample, then score each finished one once
    for si, seed in enumerate(setup.rm_seeds):
        for which in REWARD_MODELS:
            sec = ref_s + _fastest(score_seconds[(which, si)])
            for name in (f"best_of_n_{which}", f"weighted_{which}"):
                rows.append({"method": name, "rm_seed": seed, "threshold": None, "chunk_size": o.chunk_size,
                             "policy_tokens": ref_tokens, "scorer_tokens": int(test.length.sum()),
                             "share_tokens_saved": 0.0, "seconds": sec, "share_seconds_saved": 1 - sec / ref_s,
                             "share_seconds_saved_vs_generate_all": 1 - sec / hf_s,
                             "accuracy": float(offline.credits[(name, si)].mean())})
    return rows


def _all_pruned_questions(ss: SampleSet, gen, row_of: dict) -> set[int]:
    kept = np.zeros(ss.n_questions)
    for u, t in zip(gen.uids, gen.pruned_at):
        if t < 0:
            kept[ss.question[row_of[u]]] += 1
    return {int(q) for q in np.flatnonzero(kept == 0)}
