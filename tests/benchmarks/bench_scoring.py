"""Benchmark (not collected by pytest): reward-model scoring throughput against batch size.

Scores the same toy-world (prompt, solution) pairs with `gcrm_kit.models.score` (one `reward_forward` per batch) at
each batch size, `--repeats` times after one untimed warm-up pass, and reports sequences/s and tokens/s (real,
non-pad tokens) at the median time, with quartiles of the time.

    python tests/benchmarks/bench_scoring.py                           # toy-sized random reward model
    python tests/benchmarks/bench_scoring.py --model-dir <01 run>/reward_models/goal_conditioned_seed0
    python tests/benchmarks/bench_scoring.py --batch-sizes 1,8,32,128 --n-seq 256 --json scoring.json

Timings are wall-clock on whatever machine runs it (report the machine with the numbers); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, spread  # noqa: E402


def run(batch_sizes: list[int], n_seq: int = 256, repeats: int = 3, threads: int = 1, model_dir: str = "",
        size: str = "toy", device: str = "cpu") -> dict:
    """Time `score` over `n_seq` toy solutions at each batch size. Returns {"config", "rows"}; a row per batch
    size with `seconds` (spread over repeats), `seqs_per_s`, `tokens_per_s` and `speed_vs_batch_1` (or vs the
    smallest batch size measured)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import numpy as np
    import torch

    from bench_training import build_models
    from gcrm_kit.data import encode
    from gcrm_kit.models import load_reward_model, score
    from gcrm_kit.toyworld import SPLITS, build_tokenizer, sample_problems

    torch.set_num_threads(threads)
    if model_dir:
        model, tok = load_reward_model(model_dir)
    else:
        tok = build_tokenizer()
        model, _ = build_models(size, tok, seed=0, with_reference=False)
    model.eval().to(device)
    problems = sample_problems(np.random.default_rng([0, 12]), SPLITS["id"], n_seq)
    prompts, responses = [q.prompt for q in problems], [q.solution() for q in problems]
    n_tokens = sum(len(encode(tok, p, r).input_ids) for p, r in zip(prompts, responses))
    rows = []
    for bs in batch_sizes:
        score(model, tok, prompts[:bs], responses[:bs], batch_size=bs)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            score(model, tok, prompts, responses, batch_size=bs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        s = spread(times)
        rows.append({"batch_size": bs, "seconds": s, "seqs_per_s": n_seq / s["median"],
                     "tokens_per_s": n_tokens / s["median"]})
    for r in rows:
        r["speed_vs_smallest_batch"] = r["seqs_per_s"] / rows[0]["seqs_per_s"]
    return {"config": {"n_seq": n_seq, "repeats": repeats, "threads": threads, "device": device,
                       "model": model_dir or f"random Llama {size}", "tokens": n_tokens,
                       "machine": machine(threads, device)}, "rows": rows}


def markdown(res: dict) -> str:
    c = res["config"]
    lines = [f"`score` over {c['n_seq']} toy solutions ({c['tokens']} tokens), {c['model']}, median of {c['repeats']} "
             f"after a warm-up, {c['threads']} thread(s).", "",
             "| batch size | seconds (median [q1, q3]) | sequences/s | tokens/s | speed vs smallest batch |",
             "|---|---|---|---|---|"]
    for r in res["rows"]:
        s = r["seconds"]
        lines.append(f"| {r['batch_size']} | {s['median']:.3f} [{s['q1']:.3f}, {s['q3']:.3f}] | "
                     f"{r['seqs_per_s']:.0f} | {r['tokens_per_s']:.0f} | {r['speed_vs_smallest_batch']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--n-seq", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model-dir", default="")
    ap.add_argument("--size", default="toy")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    res = run([int(b) for b in args.batch_sizes.split(",")], args.n_seq, args.repeats, args.threads, args.model_dir,
              args.size, args.device)
    print(markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
