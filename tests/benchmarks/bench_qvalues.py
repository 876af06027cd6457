"""Benchmark (not collected by pytest): per-token Q-values in one forward pass vs re-scoring every prefix.

Tools that score partial responses usually run the reward model once per prefix. The kit reads every prefix's state
from one pass over the full sequence (`gcrm_kit.qvalues.token_values`), which a causal backbone allows. This script
times both on the same sequences and reports:

- valued tokens per second (one value per response token, plus the end of the prompt), and the speed ratio;
- tokens actually pushed through the model (the prefix method's grows with the square of the length);
- peak memory of each method: on CUDA the peak allocated by torch; on CPU the peak resident set size, sampled
  every millisecond while the method runs, above what the process held just before (each method runs in its own
  subprocess, after a warm-up, so neither sees the other's allocations);
- the largest difference between the two methods' Q-values and head values (they must agree: same states).

    python tests/benchmarks/bench_qvalues.py                         # toy-sized random reward model, toy solutions
    python tests/benchmarks/bench_qvalues.py --model-dir <01 run>/reward_models/goal_conditioned_seed0
    python tests/benchmarks/bench_qvalues.py --size small --response-len 256 --n-seq 16
    python tests/benchmarks/bench_qvalues.py --json results.json

Timings are wall-clock on whatever machine runs it (report the machine with the numbers); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RssSampler  # noqa: E402

SIZES = {  # random-weight Llama reward models (hidden, layers, heads, intermediate)
    "toy": (128, 4, 4, 512),
    "small": (512, 8, 8, 2048),
    "medium": (1024, 16, 16, 4096),
}


def build_inputs(args):
    """(model, tokenizer, prompts, responses, prototype) for the benchmark, all on args.device."""
    import numpy as np
    import torch

    from gcrm_kit.models import load_reward_model
    from gcrm_kit.toyworld import SPLITS, build_tokenizer, sample_problems

    torch.manual_seed(0)
    if args.model_dir:
        model, tok = load_reward_model(args.model_dir)
    else:
        from transformers import LlamaConfig, LlamaForSequenceClassification

        tok = build_tokenizer()
        h, n_layers, n_heads, inter = SIZES[args.size]
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=h, intermediate_size=inter, num_hidden_layers=n_layers,
                          num_attention_heads=n_heads, num_key_value_heads=n_heads,
                          max_position_embeddings=max(128, args.response_len + 64), num_labels=1,
                          pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = LlamaForSequenceClassification(cfg)
    model.eval().to(args.device)
    rng = np.random.default_rng(0)
    problems = sample_problems(rng, SPLITS["id"], args.n_seq)
    prompts = [q.prompt for q in problems]
    if args.response_len:
        # synthetic responses of a fixed length, from the toy alphabet
        alphabet = list("0123456789+-*=;")
        responses = ["".join(rng.choice(alphabet, args.response_len)) for _ in problems]
    else:
        responses = [q.solution() for q in problems]
    proto = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    return model, tok, prompts, responses, proto


def one_pass(model, tok, prompts, responses, proto, batch_size):
    """Q and head values of every prefix from one forward pass per batch of sequences."""
    from gcrm_kit.data import encode
    from gcrm_kit.qvalues import token_values

    tv = token_values(model, tok, prompts, responses, {"g": proto}, batch_size=batch_size)
    n_forward_tokens = sum(len(encode(tok, p, r).input_ids) for p, r in zip(prompts, responses))
    return [tv.row("g", i) for i in range(len(tv))], [tv.row("head", i) for i in range(len(tv))], n_forward_tokens


def prefix_rescoring(model, tok, prompts, responses, proto, batch_size):
    """The same values, each prefix re-scored with its own forward pass (batched `batch_size` prefixes at a time)
    and read at its last token."""
    import numpy as np
    import torch

    from gcrm_kit.data import Encoded, encode, pad_batch
    from gcrm_kit.models import last_token_index, reward_forward
    from gcrm_kit.qvalues import q_values

    dev = next(model.parameters()).device
    prefixes, owner = [], []
    for i, (p, r) in enumerate(zip(prompts, responses)):
        e = encode(tok, p, r)
        for k in range(e.response_len + 1):  # prefix ending at the prompt's last token, ..., at the EOS
            prefixes.append(Encoded(e.input_ids[: e.response_start + k], e.response_start))
            owner.append(i)
    order = sorted(range(len(prefixes)), key=lambda j: len(prefixes[j].input_ids))
    q_flat, h_flat = np.zeros(len(prefixes)), np.zeros(len(prefixes))
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            b = {k: v.to(dev) for k, v in pad_batch([prefixes[j] for j in idx], tok.pad_token_id).items()}
            out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
            last = last_token_index(b["attention_mask"])
            rows = torch.arange(len(idx), device=dev)
            q_flat[idx] = q_values(out.hidden[rows, last], proto).float().cpu().numpy()
            h_flat[idx] = out.token_rewards[rows, last].float().cpu().numpy()
    qs, hs, start = [], [], 0
    for i in range(len(prompts)):
        n = owner.count(i)
        qs.append(q_flat[start:start + n])
        hs.append(h_flat[start:start + n])
        start += n
    return qs, hs, sum(len(p.input_ids) for p in prefixes)


METHODS = {"one_pass": one_pass, "prefix_rescoring": prefix_rescoring}


def _measure(method: str, args, queue):
    """Run one method in this (fresh) process: warm up, then time `args.repeats` runs; report peak memory."""
    os.environ["TQDM_DISABLE"] = "1"
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    model, tok, prompts, responses, proto = build_inputs(args)
    fn = METHODS[method]
    fn(model, tok, prompts[:2], responses[:2], proto, args.batch_size)  # warm-up (allocator, kernels)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    sampler = RssSampler()
    times = []
    with sampler:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            qs, hs, n_fwd = fn(model, tok, prompts, responses, proto, args.batch_size)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    peak = ((torch.cuda.max_memory_allocated() - base) if cuda else sampler.peak_rise) / 2**20
    n_values = int(sum(len(q) for q in qs))
    queue.put({"method": method, "seconds": float(np.median(times)), "all_seconds": times, "valued_tokens": n_values,
               "forward_tokens": int(n_fwd), "valued_tokens_per_s": n_values / float(np.median(times)),
               "peak_mib": float(peak), "peak_kind": "cuda allocated" if cuda else "peak RSS rise (sampled)",
               "q": [q.tolist() for q in qs], "head": [h.tolist() for h in hs]})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="", help="a saved reward model (e.g. from a notebook-01 run); default: "
                                                   "a random-weight Llama of --size")
    ap.add_argument("--size", default="toy", choices=sorted(SIZES))
    ap.add_argument("--n-seq", type=int, default=128, help="sequences scored")
    ap.add_argument("--response-len", type=int, default=0, help="synthetic responses of this many tokens; 0: the "
                                                                "toy world's correct solutions (about 20-30 tokens)")
    ap.add_argument("--batch-size", type=int, default=64,
                    help="sequences (one pass) or prefixes (re-scoring) per forward")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)

    import numpy as np

    ctx = mp.get_context("spawn")
    results = {}
    for method in METHODS:
        q = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(method, args, q))
        proc.start()
        results[method] = q.get()
        proc.join()
    a, b = results["one_pass"], results["prefix_rescoring"]
    max_dq = max(float(np.max(np.abs(np.array(x) - np.array(y)))) for x, y in zip(a["q"], b["q"]))
    max_dh = max(float(np.max(np.abs(np.array(x) - np.array(y)))) for x, y in zip(a["head"], b["head"]))
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}, "
                   f"device={args.device}",
        "model": args.model_dir or f"random Llama {args.size} {SIZES[args.size]}",
        "n_seq": args.n_seq, "batch_size": args.batch_size, "repeats": args.repeats,
        "mean_valued_tokens_per_seq": a["valued_tokens"] / args.n_seq,
        **{f"{m}_{k}": r[k] for m, r in results.items() for k in ("seconds", "all_seconds", "valued_tokens_per_s",
                                                                  "forward_tokens", "peak_mib")},
        "speedup": b["seconds"] / a["seconds"],
        "forward_token_ratio": b["forward_tokens"] / a["forward_tokens"],
        "max_abs_diff_q": max_dq, "max_abs_diff_head": max_dh,
        "peak_kind": a["peak_kind"],
    }
    for k, v in summary.items():
        print(f"{k:38s} {v:.4g}" if isinstance(v, float) else f"{k:38s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
