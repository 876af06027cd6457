"""Benchmark: wall-clock of online Q-value pruning against generating every sample, and against what the FLOP model
(`gcrm_kit.filtering.cost`: 2 x parameters x tokens, policy and scorer) predicts. Not collected by pytest.

    python tests/benchmarks/bench_online_pruning.py [--rm-run outputs/01_rm_training/toy/<run> | --policy-dir DIR]
        [--questions 48] [--loops chunked,cached] [--score-at ";"] [--out bench.json]

Samples N solutions for toy-world questions with the policy and prunes them online with a reward model, at
thresholds that prune a given share of samples (quantiles of the per-sample minimum Q-value after k tokens, measured
on these very samples). Every configuration is timed `--repeats` times, each run right after a run of the reference
(the cached loop's ``none``); the fastest seconds are reported and, for the comparison with the FLOP model, the
median of the paired ratios to the reference (a neighbour's load on a shared machine moves both runs of a pair
alike). Next to the pruned runs:

- ``generate_all``: one plain `generate` call per batch (how sampling is usually done);
- ``none``: the loop without a scorer (finished samples leave the batch);
- ``scored``: the loop with the reward model reading every token but never pruning (its overhead).

Loops: ``chunked`` (`generate_pruned`, one `generate` call per chunk) and ``cached`` (`decode_pruned`, one decoding
loop from the policy's key/value cache, reads every chunk tokens; with `--score-at`, also rows reading at step
boundaries only). For every row: FLOPs by the cost model (prompts + generated tokens x policy parameters, tokens read x
scorer parameters), its ratio to the reference's FLOPs (what the model predicts for the time ratio), and measured /
predicted (the median paired time ratio over the FLOP ratio). One more, instrumented, run of each configuration splits its time into policy
forward passes, scorer forward passes, cache row selection and the rest (sampling, bookkeeping, Python).

Models: `--rm-run`, a finished notebook-01 run (its policy and first goal-conditioned reward model); `--policy-dir`, a
policy checkpoint (e.g. the cached toy policy) with a reward model initialised from it (`--scorer-layers`: its first
layers only) and a random goal; neither: random models of the toy size. Timings of random models are of the machinery only (their lengths are random).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gcrm_kit.filtering import RewardModelScorer, decode_pruned, generate_pruned, threshold_grid  # noqa: E402
from gcrm_kit.filtering.cost import FLOPS_PER_PARAM_TOKEN, count_params  # noqa: E402


def load_models(rm_run: str | None, policy_dir: str | None, device: str, scorer_layers: int = 0):
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
        if not policy_dir:
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
        if scorer_layers:  # a smaller scorer: the policy's first layers only (its FLOPs shrink with them)
            rm.model.layers = rm.model.layers[:scorer_layers]
            rm.config.num_hidden_layers = scorer_layers
            rm.config.layer_types = rm.config.layer_types[:scorer_layers] if getattr(rm.config, "layer_types", None) \
                else None
        torch.manual_seed(1)
        goal = torch.randn(rm.config.hidden_size)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    return policy, tokenizer, rm.to(device).eval(), goal


def run(loop: str, chunk: int, score_at, policy, tokenizer, prompts, uids, scorer, tau, desc, common):
    """One generation: ``generate_all`` (one `generate` call), the chunked loop or the cached loop."""
    tau = float("-inf") if tau is None else tau
    if loop == "cached":
        return decode_pruned(policy, tokenizer, prompts, uids, scorer=scorer, threshold=tau, score_every=chunk,
                             score_at=score_at, desc=desc, **common)
    return generate_pruned(policy, tokenizer, prompts, uids, scorer=scorer, threshold=tau, chunk_size=chunk,
                           desc=desc, **common)


class Split:
    """Wall-clock of policy forward passes, scorer forward passes and cache row selection, summed while installed
    (wrappers on the two models' forward and on `DynamicCache.batch_select_indices`)."""

    def __init__(self, policy, rm):
        from transformers import DynamicCache

        self.parts = {"policy_forward": 0.0, "scorer_forward": 0.0, "cache_select": 0.0}
        self._undo = []
        from gcrm_kit.models import backbone_of

        self._wrap(policy, "forward", "policy_forward")
        self._wrap(backbone_of(rm)[0], "forward", "scorer_forward")
        self._wrap(DynamicCache, "batch_select_indices", "cache_select")

    def _wrap(self, obj, name, key):
        f = getattr(obj, name)
        had = name in vars(obj)

        def timed(*a, **k):
            t = time.perf_counter()
            out = f(*a, **k)
            self.parts[key] += time.perf_counter() - t
            return out

        setattr(obj, name, timed)
        self._undo.append((obj, name, f, had))

    def remove(self):
        for obj, name, f, had in reversed(self._undo):
            if had and isinstance(obj, type):
                setattr(obj, name, f)
            else:
                delattr(obj, name) if not had else setattr(obj, name, f)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm-run", default=None, help="a finished 01_rm_training run folder")
    ap.add_argument("--policy-dir", default=None, help="a policy checkpoint (without --rm-run)")
    ap.add_argument("--scorer-layers", type=int, default=0, help="without --rm-run: the reward model keeps the "
                    "policy's first this many layers (0: all, a scorer as large as the policy)")
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--n", type=int, default=8, help="samples per question")
    ap.add_argument("--chunks", default="8", help="tokens between two reads of the reward model")
    ap.add_argument("--loops", default="chunked,cached")
    ap.add_argument("--score-at", default=";", help="cached loop: also rows reading at step boundaries only "
                    "(empty: none)")
    ap.add_argument("--prune-shares", default="0.5")
    ap.add_argument("--skip", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    from gcrm_kit.toyworld import MARK_CHARS, SPLITS, sample_problems

    policy, tokenizer, rm, goal = load_models(args.rm_run, args.policy_dir, args.device, args.scorer_layers)
    problems = sample_problems(np.random.default_rng([args.seed, 99]), SPLITS["id"], args.questions)
    prompts = [q.prompt for q in problems for _ in range(args.n)]
    uids = list(range(len(prompts)))
    common = dict(max_new_tokens=args.max_new_tokens, temperature=1.0, seed=args.seed, batch_size=args.batch_size,
                  suppress_tokens=list(MARK_CHARS), skip_tokens=args.skip)
    chunks = [int(c) for c in args.chunks.split(",")]
    shares = [float(s) for s in args.prune_shares.split(",")]
    loops = [s for s in args.loops.split(",") if s]
    n_pol, n_rm = count_params(policy), count_params(rm)
    bos = int(tokenizer.bos_token_id is not None)
    prompt_tokens = sum(bos + len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)

    # Q-values of every sample, read once, to place thresholds at the requested shares of pruned samples
    probe = generate_pruned(policy, tokenizer, prompts, uids, scorer=RewardModelScorer(rm, "q", goal),
                            chunk_size=args.max_new_tokens, desc="probe", **common)
    q = np.full((len(uids), max(len(s) for s in probe.scores)), np.nan)
    for i, s in enumerate(probe.scores):
        q[i, :len(s)] = s
    taus = dict(zip(shares, threshold_grid(q, args.skip, shares).tolist()))

    # (name, loop, chunk, score_at, threshold: None = no scorer)
    configs = [("generate_all", "chunked", args.max_new_tokens, None, None)]
    for loop in loops:
        for c in chunks:
            configs += [("none", loop, c, None, None), ("scored", loop, c, None, float("-inf"))]
            configs += [(f"pruned@{s}", loop, c, None, taus[s]) for s in shares]
    if "cached" in loops and args.score_at:
        configs += [("scored", "cached", 0, args.score_at, float("-inf"))]
        configs += [(f"pruned@{s}", "cached", 0, args.score_at, taus[s]) for s in shares]
    key = [(m, lp, c, sa) for m, lp, c, sa, _ in configs]
    ref = ("none", "cached", chunks[0], None) if "cached" in loops else ("none", loops[0], chunks[0], None)
    cfg = dict(zip(key, configs))
    times: dict[tuple, list[float]] = {k: [] for k in key}
    paired: dict[tuple, list[float]] = {k: [] for k in key}
    first: dict[tuple, object] = {}

    def timed(k):
        m, lp, c, sa, tau = cfg[k]
        scorer = RewardModelScorer(rm, "q", goal) if tau is not None else None
        g = run(lp, c, sa, policy, tokenizer, prompts, uids, scorer, tau, m, common)
        times[k].append(g.seconds)
        first.setdefault(k, g)
        return g.seconds

    for _ in range(args.repeats):
        for k in key:
            # each run right after a run of the reference: their ratio is paired, so a neighbour's load that comes
            # and goes over seconds moves both alike
            if k == ref:
                continue
            r = timed(ref)
            paired[k].append(timed(k) / r)
    paired[ref] = [1.0] * args.repeats
    splits = {}
    for k, (m, lp, c, sa, tau) in zip(key, configs):
        sp = Split(policy, rm)
        try:
            g = run(lp, c, sa, policy, tokenizer, prompts, uids, RewardModelScorer(rm, "q", goal) if tau is not None
                    else None, tau, m, common)
        finally:
            sp.remove()
        splits[k] = dict(sp.parts, other=g.seconds - sum(sp.parts.values()), total=g.seconds)

    all_tokens = first[key[0]].policy_tokens
    rows = []
    for k in key:
        g = first[k]
        pol_flops = FLOPS_PER_PARAM_TOKEN * n_pol * (prompt_tokens + g.policy_tokens)
        sc_flops = FLOPS_PER_PARAM_TOKEN * n_rm * g.scorer_tokens
        rows.append({"config": f"{k[1]} {k[0]}" if k[0] != "generate_all" else "generate_all", "method": k[0],
                     "loop": k[1] if k[0] != "generate_all" else "generate", "chunk": k[2], "score_at": k[3],
                     "threshold": cfg[k][4], "seconds": min(times[k]), "seconds_all": times[k],
                     "ratio_to_reference_all": paired[k], "ratio_to_reference": float(np.median(paired[k])),
                     "policy_tokens": g.policy_tokens, "scorer_tokens": g.scorer_tokens,
                     "share_pruned": float(np.mean([t >= 0 for t in g.pruned_at])),
                     "share_tokens_saved": 1 - g.policy_tokens / all_tokens,
                     "policy_flops": pol_flops, "scorer_flops": sc_flops, "flops": pol_flops + sc_flops,
                     "split": splits[k]})
    by = {(r["method"], r["loop"], r["chunk"], r["score_at"]): r for r in rows}
    ref_row = by[(ref[0], ref[1], ref[2], ref[3])]
    s_per_flop = ref_row["seconds"] / ref_row["flops"]
    ref_all = by[("generate_all", "generate", args.max_new_tokens, None)]["seconds"]
    for r in rows:
        # predicted: the reference's seconds x this row's FLOPs / the reference's; measured: the median paired ratio
        r["flops_ratio_to_reference"] = r["flops"] / ref_row["flops"]
        r["predicted_seconds"] = r["flops"] * s_per_flop
        r["measured_over_predicted"] = r["ratio_to_reference"] / r["flops_ratio_to_reference"]
        r["measured_over_predicted_fastest"] = r["seconds"] / r["predicted_seconds"]
        r["share_seconds_saved_vs_generate_all"] = 1 - r["seconds"] / ref_all
        r["share_seconds_saved_vs_none"] = 1 - r["seconds"] / by[("none", r["loop"], r["chunk"], None)]["seconds"] \
            if ("none", r["loop"], r["chunk"], None) in by else float("nan")
    env = {"device": args.device, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
           "torch": torch.__version__, "samples": len(prompts), "rm_run": args.rm_run, "policy_dir": args.policy_dir,
           "policy_params": n_pol, "scorer_params": n_rm, "prompt_tokens": prompt_tokens,
           "seconds_per_gflop_reference": s_per_flop * 1e9, "reference": " ".join(map(str, ref)),
           "peak_rss_mb": _peak_rss_mb()}
    print(json.dumps(env))
    print(markdown(rows))
    out = {"env": env, "args": vars(args), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table: seconds, FLOPs, measured / predicted and the split of the instrumented run."""
    md = ("| config | reads | pruned | policy tok saved | seconds (fastest) | GFLOP | time / ref (paired median) | "
          "FLOPs / ref | measured / predicted | policy fwd | scorer fwd | cache select | other |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        sp = r["split"]
        reads = ("-" if r["method"] in ("generate_all", "none") else
                 f"at {r['score_at']!r}" if r["score_at"] else f"every {r['chunk']}")
        parts = " | ".join(f"{100 * sp[p] / sp['total']:.0f}%" for p in
                           ("policy_forward", "scorer_forward", "cache_select", "other"))
        md += (f"| {r['config']} | {reads} | {100 * r['share_pruned']:.0f}% | {100 * r['share_tokens_saved']:.0f}% | "
               f"{r['seconds']:.2f} | {r['flops'] / 1e9:.1f} | {r['ratio_to_reference']:.2f} | "
               f"{r['flops_ratio_to_reference']:.2f} | {r['measured_over_predicted']:.2f} | {parts} |\n")
    return md


def _peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        return float("nan")


if __name__ == "__main__":
    main()
