"""Benchmark (not collected by pytest): how close the toy models run to this machine's float32 matmul peak.

One run measures, for each thread count asked for:

- **peak**: a loop of (N x N) @ (N x N) float32 `torch.matmul` (N = 1024; `--quick`: 512), GFLOP/s = 2 N^3 per
  product at the fastest of the products, measured before and after the thread count's other parts (the higher of
  the two is kept); the ceiling every other row is reported against;
- **policy_train**: training steps of the toy policy (`toyworld.policy.llama_config` at the `PolicyParams` defaults)
  on toy-corpus examples (`LMCollator`), per batch size: forward, causal-LM loss, backward, gradient clipping,
  AdamW step, as the policy's `Trainer` runs them (data collation included, nothing else);
- **rm_train**: training steps of a toy-size reward model (the policy's shape with a scalar head) on toy preference
  pairs (`PairCollator`, chosen and rejected in one batch): Bradley-Terry plus the goal-conditioned contrastive term
  (lambda 0.5, 16 + 16 positions), as `training.RewardTrainer.compute_loss` computes it, backward, clipping, AdamW;
- **decode_prefill** / **decode_step**: the policy forward only (no gradient): a batch of prompts at once, and one new
  token per row with a key/value cache of the rows' prefixes (what `generate` and the step-level decoder run).

Rates: tokens/s counts real tokens (attention mask); achieved GFLOP/s counts the work done on every position, padding
included: training 6 N + 12 L T d per token (forward + backward), forward only 2 N + 4 L T d (N: the parameters
of every matrix product, i.e. all but the input embedding; L layers, d hidden size, T the attended length: the
padded batch length, or the cache length for decode_step; PaLM's accounting of attention). `frac_peak` is achieved
over the same thread count's peak. With `--compile` the reward-model step is also run with `torch.compile(model)`
(compile seconds and the largest loss difference to eager on the same batches are reported).

    python tests/benchmarks/throughput.py outputs/benchmarks/throughput.json
    python tests/benchmarks/throughput.py /tmp/t.json --threads 1 --quick          # about a minute
    python tests/benchmarks/throughput.py /tmp/t.json --threads 1,2 --compile

Timings are wall-clock on whatever machine runs it (report the machine and its load with the numbers); nothing is
asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, spread  # noqa: E402


def matmul_peak(n: int, seconds: float) -> dict:
    """GFLOP/s of repeated (n x n) @ (n x n) float32 products for about `seconds` (after two warm-up products)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.matmul(a, b)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t)
    sp = spread(times)
    # the fastest product is the ceiling: on a shared machine the median is as slow as the neighbours make it
    return {"part": "peak", "n": n, "step_s": sp["min"], "gflops": 2 * n ** 3 / sp["min"] / 1e9,
            "gflops_median": 2 * n ** 3 / sp["median"] / 1e9, "repeats": len(times)}


def matmul_params(model) -> int:
    """Parameters that take part in matrix products: all but the input embedding (a lookup)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def flops_per_token(model, attended: float, train: bool) -> float:
    """6 N + 12 L T d (training) or 2 N + 4 L T d (forward only) for attended length T."""
    c = model.config
    n, att = matmul_params(model), c.num_hidden_layers * attended * c.hidden_size
    return 6 * n + 12 * att if train else 2 * n + 4 * att


def _policy_model():
    import torch
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config
    from gcrm_kit.toyworld.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    return LlamaForCausalLM(llama_config(PolicyParams(), tok)), tok


def _policy_batches(tok, batch_size: int, n_batches: int) -> list[dict]:
    from gcrm_kit.data import LMCollator
    from gcrm_kit.params import WorldParams
    from gcrm_kit.toyworld.policy import corpus_example, make_corpus

    corpus = make_corpus(replace(WorldParams(), corpus_size=batch_size * n_batches), 0)
    ex = [corpus_example(tok, q, s, v) for q, s, v in corpus]
    col = LMCollator(tok.pad_token_id)
    return [col(ex[i:i + batch_size]) for i in range(0, len(ex), batch_size)][:n_batches]


def _train_steps(model, batches: list[dict], loss_fn, warmup: int, steps: int) -> dict:
    """Median step time over `steps` steps after `warmup`, cycling through `batches`; tokens and attended lengths of
    the timed batches; the losses of every step."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95))
    times, toks, lengths, losses = [], [], [], []
    for i in range(warmup + steps):
        b = batches[i % len(batches)]
        t = time.perf_counter()
        loss = loss_fn(model, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t
        losses.append(loss.item())
        if i >= warmup:
            times.append(dt)
            toks.append(int(b["attention_mask"].sum()))
            lengths.append(b["input_ids"].numel())
    return {"times": times, "tokens": toks, "positions": lengths, "losses": losses}


def _rates(model, res: dict, peak: float, train: bool, attended: float) -> dict:
    """Median step time with quartiles, tokens/s (real tokens), achieved GFLOP/s (every position, `attended` long)
    and its fraction of `peak`."""
    import numpy as np

    sp = spread(res["times"])
    positions = float(np.mean(res["positions"]))
    gflops = positions * flops_per_token(model, attended, train) / sp["median"] / 1e9
    return {"step_s": sp["median"], "step_q1": sp["q1"], "step_q3": sp["q3"],
            "tokens_per_s": float(np.mean(res["tokens"])) / sp["median"], "gflops": gflops, "frac_peak": gflops / peak,
            "attended": attended}


def policy_train(batch_size: int, warmup: int, steps: int, peak: float) -> dict:
    """The toy policy's training step (causal-LM loss on toy-corpus examples) at `batch_size` sequences."""
    model, tok = _policy_model()
    model.train()
    batches = _policy_batches(tok, batch_size, 4)
    res = _train_steps(model, batches, lambda m, b: m(**b).loss, warmup, steps)
    T = sum(b["input_ids"].shape[1] for b in batches) / len(batches)
    return {"part": "policy_train", "batch": batch_size, "params_matmul": matmul_params(model),
            **_rates(model, res, peak, True, T)}


def _rm_model_and_batches(batch_pairs: int, n_batches: int):
    import torch
    from bench_training import build_models, toy_pairs

    from gcrm_kit.data import PairCollator, encode_pairs
    from gcrm_kit.toyworld.tokenizer import build_tokenizer

    tok = build_tokenizer()
    rm, _ = build_models("toy", tok, 0, False)
    enc, _ = encode_pairs(tok, toy_pairs(batch_pairs * n_batches), 128)
    col = PairCollator(tok.pad_token_id)
    torch.manual_seed(0)
    return rm, [col(enc[i:i + batch_pairs]) for i in range(0, len(enc), batch_pairs)][:n_batches]


def _rm_loss(generator):
    """The kit's loss with lambda = 0.5 (RewardTrainer.compute_loss without the logging)."""
    from gcrm_kit.losses import bradley_terry_loss, contrastive_loss, draw_positions
    from gcrm_kit.models import reward_forward

    def loss(model, b):
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        B = b["input_ids"].shape[0] // 2
        draw = draw_positions(b["response_mask"][:B], b["response_mask"][B:], 16, 16, (0.0, 1.0), (0.0, 1.0),
                              generator=generator)
        con = contrastive_loss(out.hidden[:B], out.hidden[B:], draw, "cosine")
        return bradley_terry_loss(out.rewards[:B], out.rewards[B:]) + 0.5 * con.loss

    return loss


def rm_train(batch_pairs: int, warmup: int, steps: int, peak: float, compile_model: bool = False) -> dict:
    """A toy-size reward model's training step at `batch_pairs` pairs (2 x batch_pairs sequences)."""
    import torch

    rm, batches = _rm_model_and_batches(batch_pairs, 4)
    rm.train()
    row = {"part": "rm_train" + ("_compiled" if compile_model else ""), "batch": batch_pairs,
           "params_matmul": matmul_params(rm)}
    model = rm
    if compile_model:
        model = torch.compile(rm)
        t = time.perf_counter()
        _rm_loss(torch.Generator().manual_seed(1))(model, batches[0]).backward()  # compiles forward and backward
        rm.zero_grad(set_to_none=True)
        row["compile_s"] = time.perf_counter() - t
    res = _train_steps(model, batches, _rm_loss(torch.Generator().manual_seed(0)), warmup, steps)
    T = sum(b["input_ids"].shape[1] for b in batches) / len(batches)
    row["losses"] = res["losses"]
    return {**row, **_rates(rm, res, peak, True, T)}


def decode(batch: int, steps: int, peak: float) -> list[dict]:
    """The policy forward only: prefill of `batch` prompts+partial solutions, and one token per row with a cache."""
    import torch

    model, tok = _policy_model()
    model.eval()
    b = _policy_batches(tok, batch, 1)[0]
    ids, att = b["input_ids"][:, :48], b["attention_mask"][:, :48]
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    out = []
    with torch.no_grad():
        times = []
        for i in range(steps + 1):
            t = time.perf_counter()
            o = model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True)
            if i:
                times.append(time.perf_counter() - t)
        res = {"times": times, "tokens": [int(att.sum())] * len(times), "positions": [ids.numel()] * len(times)}
        out.append({"part": "decode_prefill", "batch": batch, **_rates(model, res, peak, False, ids.shape[1])})
        cache = o.past_key_values
        new = torch.full((batch, 1), tok.eos_token_id)
        times = []
        for i in range(steps + 1):
            m = torch.cat([att, torch.ones(batch, 1 + i, dtype=att.dtype)], 1)
            t = time.perf_counter()
            model(input_ids=new, attention_mask=m, position_ids=pos[:, -1:] + 1 + i, past_key_values=cache,
                  use_cache=True)
            if i:
                times.append(time.perf_counter() - t)
        res = {"times": times, "tokens": [batch] * len(times), "positions": [batch] * len(times)}
        out.append({"part": "decode_step", "batch": batch, **_rates(model, res, peak, False, ids.shape[1] + steps)})
    return out


def run(threads: list[int], quick: bool, compile_model: bool) -> dict:
    import torch

    n = 512 if quick else 1024
    warmup, steps = (1, 3) if quick else (2, 6)
    policy_batches = [64] if quick else [32, 64, 128]
    rm_batches = [32] if quick else [16, 32, 64]
    rows = Rows()
    for t in threads:
        torch.set_num_threads(t)
        peak = matmul_peak(n, 1.0 if quick else 3.0)
        rows.append({"threads": t, **peak})
        first = len(rows)
        for bs in policy_batches:
            rows.append({"threads": t, **policy_train(bs, warmup, steps, peak["gflops"])})
        for bs in rm_batches:
            rows.append({"threads": t, **rm_train(bs, warmup, steps, peak["gflops"])})
        for r in decode(256 if quick else 512, steps, peak["gflops"]):
            rows.append({"threads": t, **r})
        if compile_model:
            eager = next(r for r in rows if r["threads"] == t and r["part"] == "rm_train" and r["batch"] == 32) \
                if 32 in rm_batches else rm_train(32, warmup, steps, peak["gflops"])
            comp = rm_train(32, warmup, steps, peak["gflops"], compile_model=True)
            comp["max_loss_diff_vs_eager"] = max(abs(a - b) for a, b in zip(comp["losses"], eager["losses"]))
            rows.append({"threads": t, **comp})
        again = matmul_peak(n, 1.0 if quick else 3.0)
        if again["gflops"] > peak["gflops"]:  # a quieter moment: every fraction of this thread count against it
            rows[first - 1].update(again)
            for r in rows[first:]:
                r["frac_peak"] = r["gflops"] / again["gflops"]
    for r in rows:
        r.pop("losses", None)
    return {"machine": machine(threads=max(threads)), "torch": torch.__version__, "rows": list(rows)}


class Rows(list):
    """The result rows, each printed (part, batch, step seconds) as it is added, so a long run shows progress."""

    def append(self, row: dict) -> None:
        super().append(row)
        print(f"  threads={row['threads']} {row['part']} {row.get('batch', '')}: {row['step_s']:.4f} s per step",
              flush=True)


def table(res: dict) -> str:
    head = "| threads | part | batch | step s [q1, q3] | tokens/s | GFLOP/s | of peak | note |"
    lines = [head, "|" + "---|" * 8]
    for r in res["rows"]:
        q = f" [{r['step_q1']:.3f}, {r['step_q3']:.3f}]" if "step_q1" in r else ""
        note = ""
        if "compile_s" in r:
            note = f"compile {r['compile_s']:.0f} s, max loss diff {r.get('max_loss_diff_vs_eager', float('nan')):.2g}"
        if r["part"] == "peak":
            note = f"{r['n']}x{r['n']} matmul"
        tps = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else ""
        frac = f"{100 * r['frac_peak']:.1f}%" if r.get("frac_peak") is not None else ""
        lines.append(f"| {r['threads']} | {r['part']} | {r.get('batch', '')} | {r['step_s']:.4f}{q} | {tps} | "
                     f"{r['gflops']:.1f} | {frac} | {note} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", help="where to write the results (JSON)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--quick", action="store_true", help="one batch size per part, fewer steps (about a minute)")
    ap.add_argument("--compile", action="store_true", help="also time the reward-model step under torch.compile")
    args = ap.parse_args(argv)
    res = run([int(x) for x in args.threads.split(",")], args.quick, args.compile)
    print(res["machine"], "torch", res["torch"])
    print(table(res))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    from gcrm_kit.io import atomic_write_json

    atomic_write_json(out, res)
    return res


if __name__ == "__main__":
    main()
