"""Benchmark: the cost of goal-guided decoding against plain sampling and best-of-N at matched policy compute.

    PYTHONPATH=. python tests/benchmarks/bench_steering.py --rm-run outputs/01_rm_training/toy/<run> \
        [--n-prompts 200] [--repeats 3] [--reward-model goal_conditioned] [--seed-of-rm 0] [--out bench.json]

Not collected by pytest (tests/conftest.py ignores this folder): timings depend on the machine and its load, so
they are measured and reported, never asserted. For each method it reports wall-clock seconds (median and spread
over `--repeats` runs, each from its own sampling seed), policy tokens sampled and reward-model tokens per prompt,
and the peak memory of the process (CUDA: peak allocated per method). Methods: plain sampling (one sample), best-of-N
by final reward with N matched to the guided decoder's policy tokens, beam search on the policy alone, and guided
decoding towards the `correct` prototype with the reward model's key/value cache and without it (re-running
prompt + prefix + step for every candidate).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm-run", required=True, help="a finished 01_rm_training run folder")
    ap.add_argument("--reward-model", default="goal_conditioned", help="a reward model of the run: name or role")
    ap.add_argument("--seed-of-rm", type=int, default=0)
    ap.add_argument("--n-prompts", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="", help="write the results as JSON here")
    args = ap.parse_args(argv)

    from gcrm_kit import steering as S
    from gcrm_kit.params import SteeringParams, from_dict
    from gcrm_kit.runs import Run
    from gcrm_kit.toyworld import MARK_CHARS

    p = from_dict(SteeringParams, {"rm_run": str(Path(args.rm_run).resolve()), "n_prompts": args.n_prompts,
                                   "reward_models": [args.reward_model], "rm_seeds": [args.seed_of_rm],
                                   "device": args.device, "batch_size": args.batch_size})

    class _Scratch(Run):  # prepare() writes prompts.json/setup.json; keep them out of any run folder
        def write_json(self, name, obj):
            return None

    setup = S.prepare(p, _Scratch(Path("."), p.notebook, p))
    policy, tok = setup.load_policy()
    name = setup.reward_models[0]  # the model `--reward-model` (a name or a role) selected
    model, rtok = setup.load_reward_model(name, args.seed_of_rm)
    goal = S.goal_terms(p, S.build_prototypes(p, setup, model, rtok, name, args.seed_of_rm))["correct"]
    settings = p.beam
    prompts, suppress = setup.prompts, list(MARK_CHARS)
    max_new = settings.max_steps * settings.max_step_tokens
    cuda = setup.device.type == "cuda"

    def measure(fn):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with S.Timer() as t:
            pol_tok, rm_tok = fn()
        return {"seconds": t.seconds, "policy_tokens": float(np.mean(pol_tok)), "rm_tokens": float(np.mean(rm_tok)),
                "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}

    def plain(seed):
        s = S.sample_solutions(policy, tok, prompts, 1, settings.temperature, max_new, seed, suppress)
        return s.policy_tokens, [0] * len(prompts)

    def guided(seed, use_cache, with_goal=True):
        scorer = S.ContextScorer(model, use_cache=use_cache, pooling=p.step_pooling) if with_goal else None
        d = S.decode_in_batches(policy, tok, prompts, settings, p.batch_size, scorer, goal if with_goal else None,
                                seed=seed, suppress_tokens=suppress)
        return [x.policy_tokens for x in d], [x.rm_tokens for x in d]

    # N matched to the guided decoder's policy tokens, measured once before timing; this untimed run of the guided
    # decoder and of plain sampling is also the warm-up of every method's code paths (policy generate, RM forward)
    n = max(1, round(np.mean(guided(10_000, True)[0]) / np.mean(plain(10_000)[0])))

    def best_of_n(seed):
        s = S.score_samples(model, tok, S.sample_solutions(policy, tok, prompts, n, settings.temperature, max_new,
                                                             seed, suppress))
        return s.policy_tokens, s.rm_tokens

    methods = {"plain": plain, f"best_of_{n}": best_of_n,
               "beam_policy_only": lambda s: guided(s, True, with_goal=False),
               "guided_cached": lambda s: guided(s, True), "guided_no_cache": lambda s: guided(s, False)}
    results = {}
    for name, fn in methods.items():
        runs = [measure(lambda: fn(seed)) for seed in range(args.repeats)]
        secs = [r["seconds"] for r in runs]
        results[name] = {"seconds_median": statistics.median(secs), "seconds_min": min(secs),
                         "seconds_max": max(secs), "policy_tokens_per_prompt": runs[0]["policy_tokens"],
                         "rm_tokens_per_prompt": runs[0]["rm_tokens"], "cuda_peak_mb": runs[0]["cuda_peak_mb"]}
        print(f"{name:18s} {results[name]['seconds_median']:7.2f} s (min {min(secs):.2f}, max {max(secs):.2f})  "
              f"policy tok/prompt {runs[0]['policy_tokens']:7.1f}  RM tok/prompt {runs[0]['rm_tokens']:7.1f}",
              flush=True)
    base = results["plain"]["seconds_median"]
    for name, r in results.items():
        r["seconds_vs_plain"] = r["seconds_median"] / base
    out = {"n_prompts": len(prompts), "repeats": args.repeats, "best_of_n": n, "device": str(setup.device),
           "torch_threads": torch.get_num_threads(), "reward_model": f"{name}_seed{args.seed_of_rm}",
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "methods": results}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
