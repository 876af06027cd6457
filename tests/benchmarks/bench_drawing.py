"""Benchmark: generating every sample in the loop that draws samples on demand (`continuous_decoding.decode_drawn`,
one schedule that releases every sample at once) against the cached loop that generates batch by batch
(`cached_decoding.decode_pruned`, no scorer). Both give the same samples (checked); the seconds show what drawing on
demand costs per token. Not collected by pytest.

    python tests/benchmarks/bench_drawing.py --policy-dir outputs/_cache/policy/<key> [--questions 256] [--n 8]
        [--admit 32,128] [--repeats 3] [--out bench.json]

Each configuration is timed `--repeats` times, interleaved with the batch loop; the fastest seconds are reported.
`--admit`: the values of `admit_min` tried (free rows before waiting samples join the batch). Without
`--policy-dir`, a random policy of the toy size (lengths then random: machinery only). One more, untimed call of each
loop counts the key/value columns a row attends per decoding step (`columns_per_row_step`): a dense left-padded
cache makes every row of a step attend as many columns as the longest live row holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchlib import on_each_step, report  # noqa: E402
from gcrm_kit.filtering import decode_pruned  # noqa: E402
from gcrm_kit.filtering.continuous_decoding import DrawSchedule, decode_drawn  # noqa: E402


def load_policy(policy_dir: str | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if policy_dir:
        return AutoModelForCausalLM.from_pretrained(policy_dir), AutoTokenizer.from_pretrained(policy_dir)
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld import build_tokenizer
    from gcrm_kit.toyworld.policy import llama_config

    tokenizer = build_tokenizer()
    return LlamaForCausalLM(llama_config(PolicyParams(), tokenizer)), tokenizer


def columns_per_row_step(run) -> float:
    """Mean key/value columns each row attends per decoding step over one call of `run`."""
    seen = [0, 0]

    def count(stepper, tok):
        seen[0] += len(tok) * (stepper.att.shape[1] + 1)  # the cache plus the new token
        seen[1] += len(tok)
    with on_each_step(count):
        run()
    return seen[0] / max(seen[1], 1)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy-dir", default=None)
    ap.add_argument("--questions", type=int, default=256)
    ap.add_argument("--n", type=int, default=8, help="samples per question")
    ap.add_argument("--admit", default="32,128")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from gcrm_kit.toyworld import MARK_CHARS, SPLITS, sample_problems

    policy, tokenizer = load_policy(args.policy_dir)
    problems = sample_problems(np.random.default_rng([args.seed, 99]), SPLITS["id"], args.questions)
    prompts = [q.prompt for q in problems for _ in range(args.n)]
    uids = list(range(len(prompts)))
    common = dict(max_new_tokens=args.max_new_tokens, temperature=1.0, seed=args.seed, batch_size=args.batch_size,
                  suppress_tokens=list(MARK_CHARS))
    admits = [int(a) for a in args.admit.split(",")]
    times: dict[str, list[float]] = {"batch": [], **{f"on_demand@{a}": [] for a in admits}}
    same: dict[str, bool] = {}
    tokens = 0
    for _ in range(args.repeats):
        ref = decode_pruned(policy, tokenizer, prompts, uids, desc="batch", **common)
        times["batch"].append(ref.seconds)
        tokens = ref.policy_tokens
        for a in admits:
            sched = DrawSchedule([np.arange(len(prompts))], [len(prompts)], len(prompts))
            got = decode_drawn(policy, tokenizer, prompts, uids, sched, admit_min=a, desc=f"on demand {a}", **common)
            times[f"on_demand@{a}"].append(got.seconds)
            same[f"on_demand@{a}"] = all(got.response_ids[i] == ref.response_ids[i] for i in uids)
    out = {"samples": len(prompts), "policy_tokens": tokens, "threads": torch.get_num_threads(),
           "seconds": {k: min(v) for k, v in times.items()}, "seconds_all": times, "same_samples": same}
    out["ratio_to_batch"] = {k: v / out["seconds"]["batch"] for k, v in out["seconds"].items()}
    out["columns_per_row_step"] = {"batch": columns_per_row_step(
        lambda: decode_pruned(policy, tokenizer, prompts, uids, desc="batch", **common))}
    for a in admits:
        out["columns_per_row_step"][f"on_demand@{a}"] = columns_per_row_step(lambda: decode_drawn(
            policy, tokenizer, prompts, uids, DrawSchedule([np.arange(len(prompts))], [len(prompts)], len(prompts)),
            admit_min=a, desc=f"on demand {a}", **common))
    return report(out, args.out)


if __name__ == "__main__":
    main()
