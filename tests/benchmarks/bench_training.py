"""Benchmark (not collected by pytest): reward-model training throughput and memory, the kit against TRL.

The same preference pairs, model (random-init Llama of a given size, same seed, same initial weights), batch size,
maximum length, optimiser, learning-rate schedule, number of steps and thread count for every trainer:

- ``trl``: TRL's `RewardTrainer` (Bradley-Terry, no reward centring), fed the kit's token ids pre-tokenised
  (`chosen_ids` / `rejected_ids`: BOS + prompt + response + EOS), gradient checkpointing and bf16 off;
- ``kit_baseline``: the kit's `RewardTrainer` with lambda = 0 (Bradley-Terry only);
- ``kit_contrastive``: the kit with the goal-conditioned contrastive term (lambda = 0.5, 16 + 16 draws);
- ``kit_grm_sft`` / ``kit_grm_dpo``: the kit with GRM's regulariser (alpha = 0.01; the LM head rides on the reward
  model, `dpo` also runs a frozen reference model forward).

Each (size, trainer) runs in its own fresh process: `warmup` steps, then `steps` timed steps. A step's time is the
wall-clock between consecutive `on_step_end` callbacks (data loading, forward, backward, optimiser step). Reported
per configuration: median and quartiles of step times, pairs/s and tokens/s at the median (tokens: real, non-pad
tokens of chosen + rejected), and peak memory: on CPU the peak resident set size above the process's size before
`train()` (`peak_mib`: optimiser states, lazily set-up machinery, activations) and above its size after the warm-up
steps (`peak_steps_mib`: what a step adds: activations, gradients), on CUDA the peak allocated by torch. Ratios are
to TRL on the same size.

The two targets (the kit's baseline at least as fast as TRL; the contrastive term under 5% of a step) are also
measured paired, in one process: forward + backward of the same batch on the same weights, TRL's loss, the kit's
with lambda = 0 and with lambda = 0.5 taking turns, so machine load affects all of them alike.

    python tests/benchmarks/bench_training.py                                  # toy + two larger sizes
    python tests/benchmarks/bench_training.py --sizes toy --steps 5 --warmup 1 --trainers trl,kit_baseline
    python tests/benchmarks/bench_training.py --json training.json --threads 2

Timings are wall-clock on whatever machine runs it (report the machine with the numbers); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import RssSampler, machine, spread  # noqa: E402

#: random-init Llama reward models: (hidden, layers, heads, intermediate). `toy` is the toy world's policy size.
SIZES = {
    "tiny": (32, 2, 2, 64),
    "toy": (128, 4, 4, 512),
    "toy_x2": (256, 6, 4, 1024),
    "toy_x4": (512, 8, 8, 2048),
}

#: the kit's reward-model specs measured, by trainer name (RewardModelSpec fields)
KIT_SPECS = {
    "kit_baseline": {"name": "baseline"},
    "kit_contrastive": {"name": "goal_conditioned", "contrastive_weight": 0.5},
    "kit_grm_sft": {"name": "grm_sft", "grm_weight": 0.01, "grm_regulariser": "sft"},
    "kit_grm_dpo": {"name": "grm_dpo", "grm_weight": 0.01, "grm_regulariser": "dpo"},
}
TRAINERS = ["trl", *KIT_SPECS]


def toy_pairs(n: int, seed: int = 0):
    """`n` toy-world preference pairs: a question's correct solution (chosen) and a solution with slips whose
    final answer is wrong (rejected). Returns a list of `PreferencePair`."""
    import numpy as np

    from gcrm_kit.data import PreferencePair
    from gcrm_kit.toyworld import SPLITS, SlipModel, noisy_solution, sample_problems

    rng = np.random.default_rng([seed, 11])
    slips = SlipModel(step_error_rate=0.5)
    pairs = []
    for q in sample_problems(rng, SPLITS["id"], n):
        for _ in range(100):
            text, ok, _ = noisy_solution(q, rng, slips)
            if not ok:
                pairs.append(PreferencePair(q.prompt, q.solution(), text))
                break
    return pairs


def build_models(size: str, tokenizer, seed: int, with_reference: bool):
    """(reward model, causal LM or None) for `size`, random weights from `seed`. The reward model's backbone is the
    causal LM's (as a reward model starts from its policy), its scalar head seeded too; same weights every call."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    h, layers, heads, inter = SIZES[size]
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=256,
                      num_labels=1, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    policy = LlamaForCausalLM(cfg)
    torch.manual_seed(seed + 1)
    rm = LlamaForSequenceClassification(cfg)
    rm.model.load_state_dict(policy.model.state_dict())
    return rm, (policy.eval().requires_grad_(False) if with_reference else None)


class CountingCollator:
    """Wraps a collator and records the real (attention-mask) tokens of every batch it makes."""

    def __init__(self, inner):
        self.inner, self.tokens = inner, []

    def __call__(self, items):
        b = self.inner(items)
        self.tokens.append(int(b["attention_mask"].sum()))
        return b


def _step_timer(warmup: int, rss: RssSampler):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock between consecutive step ends (the first step is timed from the start of training). At the
        end of the warm-up steps the RSS sampler's size at entry and peak so far are kept (`train_start`,
        `warmup_peak`, bytes) and it starts over, to measure the timed steps alone."""

        def __init__(self):
            self.ends: list[float] = []
            self.start = None
            self.train_start = self.warmup_peak = None

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())
            if state.global_step == warmup:
                self.train_start, self.warmup_peak = rss.start, rss.peak
                rss.reset()

        def step_times(self) -> list[float]:
            marks = [self.start, *self.ends]
            return [b - a for a, b in zip(marks, marks[1:])]

    return StepTimer()


def common_args(cfg: dict, out_dir: str) -> dict:
    """TrainingArguments fields both trainers get (same optimiser, schedule, steps; no eval, saving or logging)."""
    import torch

    return dict(output_dir=out_dir, max_steps=cfg["warmup"] + cfg["steps"],
                per_device_train_batch_size=cfg["batch_size"], learning_rate=3e-4, lr_scheduler_type="cosine",
                warmup_steps=0.03, adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0,
                logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
                seed=cfg["seed"], data_seed=cfg["seed"], dataloader_num_workers=0,
                dataloader_pin_memory=torch.cuda.is_available(), use_cpu=cfg["device"] == "cpu")


def make_trainer(trainer: str, cfg: dict, out_dir: str):
    """Build the trainer `trainer` for the configuration `cfg`. Returns (trainer, counting collator)."""
    from gcrm_kit.data import PairCollator, encode_pairs
    from gcrm_kit.toyworld import build_tokenizer

    tok = build_tokenizer()
    enc, _ = encode_pairs(tok, toy_pairs(cfg["n_pairs"], cfg["seed"]), cfg["max_length"])
    spec = KIT_SPECS.get(trainer, {})
    model, reference = build_models(cfg["size"], tok, cfg["seed"], spec.get("grm_weight", 0) > 0)
    if trainer == "trl":
        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer
        from trl.trainer.reward_trainer import DataCollatorForPreference

        ds = Dataset.from_list([{"chosen_ids": e["chosen"].input_ids, "rejected_ids": e["rejected"].input_ids}
                                for e in enc])
        args = RewardConfig(**common_args(cfg, out_dir), gradient_checkpointing=False, bf16=False,
                            max_length=cfg["max_length"], center_rewards_coefficient=None)
        collator = CountingCollator(DataCollatorForPreference(pad_token_id=tok.pad_token_id))
        return RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                             data_collator=collator), collator
    from transformers import TrainingArguments

    from gcrm_kit.params import ContrastiveParams, RewardModelSpec
    from gcrm_kit.training import RewardTrainer, attach_lm_head

    if reference is not None:
        attach_lm_head(model, reference)
    args = TrainingArguments(**common_args(cfg, out_dir), remove_unused_columns=False)
    collator = CountingCollator(PairCollator(tok.pad_token_id))
    return RewardTrainer(model=model, args=args, train_dataset=enc, data_collator=collator,
                         contrastive=ContrastiveParams(), spec=RewardModelSpec(**spec),
                         reference=reference if spec.get("grm_regulariser") == "dpo" else None), collator


def measure(trainer: str, cfg: dict) -> dict:
    """Train `cfg["warmup"] + cfg["steps"]` steps with `trainer` in this process; time the last `steps`.
    Returns step times, throughput and peak memory (see the module docstring)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(cfg["threads"])
    with tempfile.TemporaryDirectory() as out_dir:
        tr, collator = make_trainer(trainer, cfg, out_dir)
        rss = RssSampler()
        timer = _step_timer(cfg["warmup"], rss)
        tr.add_callback(timer)
        cuda = cfg["device"].startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with rss:
            tr.train()
        if cuda:
            peak = peak_steps = torch.cuda.max_memory_allocated() - base
        else:
            start = rss.start if timer.train_start is None else timer.train_start
            peak, peak_steps = max(rss.peak, timer.warmup_peak or 0) - start, rss.peak_rise
    times = timer.step_times()[cfg["warmup"]:]
    s = spread(times)
    tokens_per_pair = sum(collator.tokens) / (len(collator.tokens) * cfg["batch_size"])
    pairs_per_s = cfg["batch_size"] / s["median"]
    return {"trainer": trainer, "size": cfg["size"], "step_seconds": s, "all_step_seconds": times,
            "pairs_per_s": pairs_per_s, "tokens_per_s": pairs_per_s * tokens_per_pair,
            "tokens_per_pair": tokens_per_pair, "peak_mib": peak / 2 ** 20, "peak_steps_mib": peak_steps / 2 ** 20,
            "peak_kind": "cuda allocated" if cuda else "peak RSS (sampled) above the size before train() (peak_mib) "
                                                       "and above the size after the warm-up steps (peak_steps_mib)"}


def paired_loss_times(cfg: dict, with_trl: bool) -> dict:
    """Paired measurement in one process, on one batch and identical initial weights: forward + backward of TRL's
    loss (when `with_trl`), of the kit's loss with lambda = 0 and with lambda = 0.5, taking turns step by step
    (`cfg["warmup"]` untimed turns, then `cfg["steps"]` timed ones), so machine load hits all of them alike. No
    optimiser step: the weights stay put, so every turn does the same work. Returns spreads of the seconds per
    variant, `contrastive_overhead` (median lambda=0.5 / median lambda=0 - 1) and `kit_vs_trl` (median kit lambda=0
    / median TRL; below 1: the kit is faster)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(cfg["threads"])
    with tempfile.TemporaryDirectory() as out_dir:
        kit, _ = make_trainer("kit_contrastive", cfg, out_dir)
        variants = [("kit_baseline", kit, 0.0), ("kit_contrastive", kit, 0.5)]
        batches = {"kit": next(iter(kit.get_train_dataloader()))}
        if with_trl:
            trl, _ = make_trainer("trl", cfg, out_dir)
            batches["trl"] = next(iter(trl.get_train_dataloader()))
            if not torch.equal(batches["trl"]["input_ids"], batches["kit"]["input_ids"]):
                raise RuntimeError("TRL and the kit drew different first batches; the comparison would not be paired")
            variants.insert(0, ("trl", trl, None))
        times = {name: [] for name, _, _ in variants}
        for i in range(cfg["warmup"] + cfg["steps"]):
            for name, tr, lam in variants:
                if lam is not None:
                    tr.contrastive_weight = lam
                model = tr.model.train()
                model.zero_grad(set_to_none=True)
                batch = dict(batches["trl" if name == "trl" else "kit"])
                t0 = time.perf_counter()
                tr.compute_loss(model, batch).backward()
                if cfg["device"].startswith("cuda"):
                    torch.cuda.synchronize()
                if i >= cfg["warmup"]:
                    times[name].append(time.perf_counter() - t0)
    out = {"size": cfg["size"], "steps": cfg["steps"], **{f"{k}_seconds": spread(v) for k, v in times.items()}}
    med = {k: out[f"{k}_seconds"]["median"] for k in times}
    out["contrastive_overhead"] = med["kit_contrastive"] / med["kit_baseline"] - 1
    out["kit_vs_trl"] = med["kit_baseline"] / med["trl"] if with_trl else None
    return out


def _child(fn_name: str, args: tuple, queue):
    try:
        queue.put(("ok", globals()[fn_name](*args)))
    except BaseException as e:  # report, do not hang the parent
        import traceback

        queue.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def run_isolated(fn_name: str, *args, in_process: bool = False):
    """`fn_name(*args)` in a fresh spawned process (so memory peaks do not mix), or here when `in_process`."""
    if in_process:
        return globals()[fn_name](*args)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn_name, args, q))
    proc.start()
    status, value = q.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn_name}{args[:1]} failed in its subprocess:\n{value}")
    return value


def available_trainers(names: list[str]) -> tuple[list[str], str]:
    """`names` without `trl` when TRL is not importable, and a note saying so ('' when nothing was dropped)."""
    import importlib.util

    if "trl" in names and importlib.util.find_spec("trl") is None:
        return [n for n in names if n != "trl"], "TRL is not installed (pip install 'gcrm_kit[bench]'): left out"
    return names, ""


def run(sizes: list[str], trainers: list[str], batch_size: int = 32, steps: int = 10, warmup: int = 3,
        threads: int = 1, n_pairs: int = 512, max_length: int = 128, seed: int = 0, device: str = "cpu",
        paired_steps: int = 20, in_process: bool = False) -> dict:
    """Measure every (size, trainer) and the paired contrastive overhead per size. Returns a JSON-able dict with
    `config`, `rows` (one per size and trainer, with ratios to TRL) and `paired` (`paired_loss_times`, one per
    size)."""
    trainers, note = available_trainers(trainers)
    rows, paired = [], []
    for size in sizes:
        cfg = dict(size=size, batch_size=batch_size, steps=steps, warmup=warmup, threads=threads, n_pairs=n_pairs,
                   max_length=max_length, seed=seed, device=device)
        by_trainer = {}
        for t in trainers:
            r = run_isolated("measure", t, cfg, in_process=in_process)
            by_trainer[t] = r
            print(f"[bench] {size:7s} {t:16s} {r['step_seconds']['median']:.4f} s/step "
                  f"(IQR {r['step_seconds']['q1']:.4f}-{r['step_seconds']['q3']:.4f})  {r['pairs_per_s']:.1f} pairs/s"
                  f"  {r['peak_mib']:.0f} MiB", flush=True)
        ref = by_trainer.get("trl")
        for t, r in by_trainer.items():
            r["speed_vs_trl"] = r["pairs_per_s"] / ref["pairs_per_s"] if ref else None
            r["memory_vs_trl"] = r["peak_mib"] / ref["peak_mib"] if ref and ref["peak_mib"] > 0 else None
            base = by_trainer.get("kit_baseline")
            r["step_time_vs_kit_baseline"] = (r["step_seconds"]["median"] / base["step_seconds"]["median"]
                                              if base else None)
            rows.append(r)
        if paired_steps > 0:
            o = run_isolated("paired_loss_times", {**cfg, "steps": paired_steps}, "trl" in trainers,
                             in_process=in_process)
            vs = "" if o["kit_vs_trl"] is None else f", kit lambda=0 / TRL {o['kit_vs_trl']:.3f}"
            print(f"[bench] {size:7s} paired forward+backward: contrastive overhead "
                  f"{100 * o['contrastive_overhead']:+.1f}%{vs}", flush=True)
            paired.append(o)
    config = {"sizes": {s: SIZES[s] for s in sizes}, "size_fields": "(hidden, layers, heads, intermediate)",
              "batch_size_pairs": batch_size, "timed_steps": steps, "warmup_steps": warmup, "threads": threads,
              "n_pairs": n_pairs, "max_length": max_length, "seed": seed, "device": device,
              "machine": machine(threads, device), "isolated_processes": not in_process, "note": note}
    return {"config": config, "rows": rows, "paired": paired}


def markdown(res: dict) -> str:
    """The training results as markdown tables (throughput and memory; contrastive overhead)."""
    c = res["config"]
    lines = [f"Batch {c['batch_size_pairs']} pairs, {c['timed_steps']} timed steps after {c['warmup_steps']} warm-up, "
             f"{c['threads']} thread(s), {c['machine']}. Step time: median [quartiles]. Sizes "
             f"{c['size_fields']}: " + ", ".join(f"{k} {tuple(v)}" for k, v in c["sizes"].items()) + ".",
             "" if not c.get("note") else f"\n{c['note']}\n", "",
             "| size | trainer | step s (median [q1, q3]) | pairs/s | tokens/s | speed vs TRL | step vs kit baseline "
             "| peak MiB (train / step) | memory vs TRL |",
             "|---|---|---|---|---|---|---|---|---|"]
    f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    for r in res["rows"]:
        s = r["step_seconds"]
        lines.append(f"| {r['size']} | {r['trainer']} | {s['median']:.4f} [{s['q1']:.4f}, {s['q3']:.4f}] | "
                     f"{r['pairs_per_s']:.1f} | {r['tokens_per_s']:.0f} | {f(r['speed_vs_trl'])} | "
                     f"{f(r['step_time_vs_kit_baseline'])} | {r['peak_mib']:.0f} / {r['peak_steps_mib']:.0f} | "
                     f"{f(r['memory_vs_trl'])} |")
    if res["paired"]:
        q = lambda s: "-" if s is None else f"{s['median']:.4f} [{s['q1']:.4f}, {s['q3']:.4f}]"  # noqa: E731
        lines += ["", "Paired: forward + backward of one batch, the variants taking turns on the same weights "
                  f"({res['paired'][0]['steps']} turns each):", "",
                  "| size | TRL s | kit lambda=0 s | kit lambda=0.5 s | kit lambda=0 / TRL | contrastive overhead |",
                  "|---|---|---|---|---|---|"]
        for o in res["paired"]:
            lines.append(f"| {o['size']} | {q(o.get('trl_seconds'))} | {q(o['kit_baseline_seconds'])} | "
                         f"{q(o['kit_contrastive_seconds'])} | {f(o['kit_vs_trl'], 3)} | "
                         f"{100 * o['contrastive_overhead']:+.1f}% |")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sizes", default="toy,toy_x2,toy_x4", help=f"comma-separated, from {sorted(SIZES)}")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help=f"comma-separated, from {TRAINERS}")
    ap.add_argument("--batch-size", type=int, default=32, help="pairs per step (2x sequences)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--paired-steps", type=int, default=20,
                    help="paired forward+backward turns of each variant (TRL, kit lambda 0, kit lambda 0.5; 0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-pairs", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--in-process", action="store_true", help="no subprocess per configuration (memory peaks mix)")


def run_from_args(args) -> dict:
    return run(args.sizes.split(","), args.trainers.split(","), args.batch_size, args.steps, args.warmup,
               args.threads, args.n_pairs, args.max_length, 0, args.device, args.paired_steps, args.in_process)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)
    res = run_from_args(args)
    print(markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
