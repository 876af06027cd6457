"""Benchmark: wall-clock of online Q-value pruning vs generating every sample. Not collected by pytest.

    python tests/benchmarks/bench_online_pruning.py --rm-run outputs/01_rm_training/toy/<run> [--out bench.json]

Samples N solutions for toy-world questions with the run's policy and prunes them online with its goal-conditioned
reward model (first rm seed), at thresholds that prune a given share of samples (quantiles of the per-sample
minimum Q-value after k tokens, measured on these very samples), for several chunk sizes. Every configuration is
timed `--repeats` times, interleaved, and the median reported, next to:

- ``generate_all``: one plain `generate` call per batch (how sampling is usually done);
- ``none``: the same chunked loop without a scorer (finished samples leave the batch between chunks);
- ``scored``: the chunked loop with the reward model reading every token but never pruning (its overhead).

Without --rm-run, random tiny models are used: the timings are then of the machinery only. Savings depend on the
hardware: on a CPU a step costs about in proportion to the rows in the batch, on a GPU much less so.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gcrm_kit.filtering import RewardModelScorer, generate_pruned, threshold_grid  # noqa: E402


def load_models(rm_run: str | None, device: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gcrm_kit.models import load_reward_model, reward_model_from_policy
    from gcrm_kit.qvalues import Prototype

    if rm_run:
        from gcrm_kit.rm_runs import load_rm_run, policy_dir_of

        _, dirs = load_rm_run(Path(rm_run))
        d = dirs["goal_conditioned"][0]
        policy_dir = str(policy_dir_of(d))
        rm, _ = load_reward_model(d)
        goal = Prototype.load(d, "correct").vector
    else:
        import tempfile

        from transformers import LlamaForCausalLM

        from gcrm_kit.params import PolicyParams
        from gcrm_kit.toyworld import build_tokenizer
        from gcrm_kit.toyworld.policy import llama_config

        tok = build_tokenizer()
        policy_dir = tempfile.mkdtemp()
        torch.manual_seed(0)
        LlamaForCausalLM(llama_config(PolicyParams(), tok)).save_pretrained(policy_dir)
        tok.save_pretrained(policy_dir)
        rm, _ = reward_model_from_policy(policy_dir, seed=0)
        goal = torch.randn(rm.config.hidden_size)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    return policy, tokenizer, rm.to(device).eval(), goal


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm-run", default=None, help="a finished 01_rm_training run folder")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--n", type=int, default=16, help="samples per question")
    ap.add_argument("--chunks", default="1,4,8,16")
    ap.add_argument("--prune-shares", default="0.25,0.5,0.75")
    ap.add_argument("--skip", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    from gcrm_kit.toyworld import MARK_CHARS, SPLITS, sample_problems

    policy, tokenizer, rm, goal = load_models(args.rm_run, args.device)
    problems = sample_problems(np.random.default_rng([args.seed, 99]), SPLITS["id"], args.questions)
    prompts = [q.prompt for q in problems for _ in range(args.n)]
    uids = list(range(len(prompts)))
    common = dict(max_new_tokens=args.max_new_tokens, temperature=1.0, seed=args.seed, batch_size=args.batch_size,
                  suppress_tokens=list(MARK_CHARS), skip_tokens=args.skip)
    chunks = [int(c) for c in args.chunks.split(",")]
    shares = [float(s) for s in args.prune_shares.split(",")]

    # Q-values of every sample, read once, to place thresholds at the requested shares of pruned samples
    probe = generate_pruned(policy, tokenizer, prompts, uids, scorer=RewardModelScorer(rm, "q", goal),
                            chunk_size=args.max_new_tokens, desc="probe", **common)
    L = max(len(s) for s in probe.scores)
    q = np.full((len(uids), L), np.nan)
    for i, s in enumerate(probe.scores):
        q[i, :len(s)] = s
    taus = dict(zip(shares, threshold_grid(q, args.skip, shares).tolist()))

    configs = [("generate_all", args.max_new_tokens, None)]
    for c in chunks:
        configs += [("none", c, None), ("scored", c, float("-inf"))] + [(f"pruned@{s}", c, taus[s]) for s in shares]
    times: dict[tuple, list[float]] = {(m, c): [] for m, c, _ in configs}
    first: dict[tuple, object] = {}
    for _ in range(args.repeats):
        for m, c, tau in configs:
            scorer = RewardModelScorer(rm, "q", goal) if tau is not None else None
            g = generate_pruned(policy, tokenizer, prompts, uids, scorer=scorer,
                                threshold=tau if tau is not None else float("-inf"), chunk_size=c, desc=m, **common)
            times[(m, c)].append(g.seconds)
            first.setdefault((m, c), g)
    ref_all = statistics.median(times[("generate_all", args.max_new_tokens)])
    all_tokens = first[("generate_all", args.max_new_tokens)].policy_tokens
    rows = []
    for m, c, tau in configs:
        g = first[(m, c)]
        none_c = statistics.median(times[("none", c)]) if m != "generate_all" else ref_all
        s = statistics.median(times[(m, c)])
        rows.append({"config": m, "chunk": c, "threshold": tau, "seconds": s, "seconds_all": times[(m, c)],
                     "policy_tokens": g.policy_tokens, "scorer_tokens": g.scorer_tokens,
                     "share_pruned": float(np.mean([t >= 0 for t in g.pruned_at])),
                     "share_tokens_saved": 1 - g.policy_tokens / all_tokens,
                     "share_seconds_saved_vs_none": 1 - s / none_c,
                     "share_seconds_saved_vs_generate_all": 1 - s / ref_all})
    env = {"device": args.device, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
           "torch": torch.__version__, "samples": len(prompts), "rm_run": args.rm_run,
           "peak_rss_mb": _peak_rss_mb()}
    print(json.dumps(env))
    print(f"{'config':14s} {'chunk':>5s} {'pruned':>7s} {'tok saved':>9s} {'seconds':>8s} {'vs none':>8s} "
          f"{'vs gen_all':>10s}")
    for r in rows:
        print(f"{r['config']:14s} {r['chunk']:5d} {100 * r['share_pruned']:6.1f}% "
              f"{100 * r['share_tokens_saved']:8.1f}% {r['seconds']:8.2f} "
              f"{100 * r['share_seconds_saved_vs_none']:7.1f}% "
              f"{100 * r['share_seconds_saved_vs_generate_all']:9.1f}%")
    out = {"env": env, "args": vars(args), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


def _peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        return float("nan")


if __name__ == "__main__":
    main()
