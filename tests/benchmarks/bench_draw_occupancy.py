"""Benchmark: how full the on-demand loop's batch stays while the sequential methods of a notebook-03 run draw their
samples, against generating every sample. Not collected by pytest.

    python tests/benchmarks/bench_draw_occupancy.py outputs/03_filtering/<params>/<run> [--rm-seed 0]
        [--out occupancy.json]

For the run's reference (every sample) and each sequential method at the setting validation chose for `--rm-seed`
(the same schedules as the run's online section: `sequential_online.schedules`, DeepConf's with the policy's
confidences recomputed), one call of `continuous_decoding.decode_drawn` reports: seconds, policy tokens,
prefills, decoding steps, rows per step (mean, and per quarter of the steps) and the steps run with fewer than a
quarter of the batch. A method that saves tokens but not steps saves little time: a question that draws its
samples one after another is a chain of whole generations, and the longest chain sets the run's length
(`critical_path_tokens`: per question, its first samples in parallel, then each later group after the one before).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchlib import on_each_step, report  # noqa: E402
from gcrm_kit import filtering  # noqa: E402
from gcrm_kit.data import GenerationRecord, load_jsonl  # noqa: E402
from gcrm_kit.filtering.continuous_decoding import decode_drawn  # noqa: E402
from gcrm_kit.filtering.deepconf import policy_confidences  # noqa: E402
from gcrm_kit.filtering.sequential_online import schedules  # noqa: E402
from gcrm_kit.params import FilteringParams, from_dict  # noqa: E402
from gcrm_kit.toyworld import MARK_CHARS  # noqa: E402


def critical_path(sched, lengths: np.ndarray) -> int:
    """The longest chain of tokens any question's draws form: its `first` samples in parallel, then each group of
    `step` after the previous group finished, or, with `in_flight` k, each later sample as soon as one of k slots is
    free (a sample's length: its token limit or its recorded length)."""
    longest = 0
    for order, count in zip(sched.orders, sched.counts):
        n = [min(lengths[i], sched.limits.get(i, lengths[i])) for i in order[:count]]
        chain = max(n[:sched.first], default=0)
        if sched.in_flight:
            slots = [chain] * sched.in_flight
            for m in n[sched.first:]:
                heapq.heappush(slots, heapq.heappop(slots) + m)
            chain = max(slots)
        else:
            for g in range(sched.first, count, sched.step):
                chain += max(n[g:g + sched.step])
        longest = max(longest, chain)
    return int(longest)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--rm-seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(args.run_dir)
    p = from_dict(FilteringParams, yaml.safe_load((run / "params.resolved.yaml").read_text()))
    setup = filtering.load_setup(p)
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    samples = {s: filtering.make_sample_set(s, load_jsonl(run / "data" / f"samples_{s}.jsonl", GenerationRecord),
                                            tokenizer) for s in filtering.SETS}
    test = samples["test"]
    chosen = [r for r in json.loads((run / "metrics.json").read_text())["compute_frontier"]["chosen"]
              if r["rm_seed"] in (args.rm_seed, None)]
    inputs = filtering.FrontierInputs({}, 0.0, {}, tokenizer, confidences={
        "test": policy_confidences(policy, tokenizer, test, p.frontier.logprob_top_k, p.batch_size)})
    jobs = schedules(p, setup, samples, filtering.FrontierResult([], chosen, [], [], {}), inputs)
    prompts, uids = [r.prompt for r in test.records], [int(u) for u in test.uids]
    rows: list[int] = []
    out = {"run": str(run), "rm_seed": args.rm_seed, "batch_size": p.online.batch_size, "jobs": {}}
    for (method, _), (setting, sched) in jobs.items():
        rows.clear()
        with on_each_step(lambda stepper, tok: rows.append(len(tok))):
            g = decode_drawn(policy, tokenizer, prompts, uids, sched.fresh(), max_new_tokens=p.max_new_tokens,
                             temperature=p.temperature, seed=p.seed, batch_size=p.online.batch_size,
                             suppress_tokens=list(MARK_CHARS), desc=method)
        r = np.array(rows)
        out["jobs"][method] = {
            "setting": setting, "seconds": g.seconds, "policy_tokens": g.policy_tokens, "prefills": g.prefills,
            "steps": g.steps, "rows_per_step": float(r.mean()),
            "rows_per_step_by_quarter": [float(x.mean()) for x in np.array_split(r, 4)],
            "steps_under_a_quarter_full": int((r < p.online.batch_size / 4).sum()),
            "critical_path_tokens": critical_path(sched, test.length)}
    return report(out, args.out)


if __name__ == "__main__":
    main()
