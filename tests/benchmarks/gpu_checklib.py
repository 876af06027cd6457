"""What `gpu_check.py` runs inside one process (not collected by pytest): write a random-weight Llama policy
checkpoint, then train a reward model on it for a few steps the way the kit does, and measure.

- `SIZES`: the model shapes (`tiny` for CPU tests; `1b` and `8b` are Llama-3.2-1B and Llama-3.1-8B shapes);
- `MODES`: full fine-tune, LoRA, 4-bit + LoRA, full fine-tune under ZeRO-3 over two processes;
- `prepare_policy(job)`: a random policy checkpoint (config, weights, the toy tokenizer) in `job["policy_dir"]`;
- `run_config(job)`: the measured training run; returns the result dict `gpu_check.py` writes to its JSON file.

Training goes through the kit: `rm_training.reward_training_args` (bf16, gradient checkpointing, DeepSpeed),
`models.reward_model_from_policy` (dtype, attention, 4-bit, LoRA), `training.RewardTrainer` (Bradley-Terry plus the
goal-conditioned contrastive term), `memory.estimate_memory` (the estimate the kit prints before training).
"""

from __future__ import annotations

import gc
import math
import os
import resource
import statistics
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

from gcrm_kit.data import Encoded, PairCollator
from gcrm_kit.memory import estimate_memory
from gcrm_kit.models import flash_attn_error, reward_model_from_policy
from gcrm_kit.params import RewardModelSpec, RMTrainingParams, from_dict
from gcrm_kit.rm_training import reward_training_args
from gcrm_kit.runs import seed_everything
from gcrm_kit.toyworld import build_tokenizer
from gcrm_kit.training import RewardTrainer

GIB = 1024 ** 3

#: bf16 dense peak TFLOP/s by a substring of the device name (no sparsity); --peak-tflops overrides
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


@dataclass(frozen=True)
class Size:
    """A Llama shape and the batch it trains with: `batch` pairs (2 * batch sequences) of `seq_len` tokens per
    process; `checkpointing`: gradient checkpointing in the full fine-tunes (where activations would not fit)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    batch: int
    seq_len: int
    checkpointing: bool = False


SIZES = {
    # widths are multiples of bitsandbytes' 4-bit block size (64)
    "tiny": Size(64, 128, 2, 2, 2, 256, False, batch=2, seq_len=64),
    "1b": Size(2048, 8192, 16, 32, 8, 128256, True, batch=8, seq_len=1024),
    "8b": Size(4096, 14336, 32, 32, 8, 128256, False, batch=4, seq_len=1024, checkpointing=True),
}

#: mode -> (LoRA, 4-bit, ZeRO-3 over two processes)
MODES = {"full": (False, False, False), "lora": (True, False, False), "qlora": (True, True, False),
         "zero3": (False, False, True)}
ZERO3_PROCESSES = 2


def llama_config(size: Size, tokenizer):
    """A `transformers.LlamaConfig` of `size` with `tokenizer`'s special ids."""
    return LlamaConfig(vocab_size=size.vocab, hidden_size=size.hidden, intermediate_size=size.intermediate,
                       num_hidden_layers=size.layers, num_attention_heads=size.heads,
                       num_key_value_heads=size.kv_heads, head_dim=size.hidden // size.heads,
                       max_position_embeddings=max(8192, size.seq_len), rms_norm_eps=1e-5,
                       rope_parameters={"rope_theta": 500000.0, "rope_type": "default"},
                       tie_word_embeddings=size.tied, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def prepare_policy(job: dict) -> dict:
    """Write a random-weight causal-LM policy of size `job["size"]` and the toy tokenizer to `job["policy_dir"]`.
    Weights are drawn on `job["device"]` (fast on a GPU) in bfloat16 there, float32 on CPU. Returns
    {"status": "ok", "wall_s": seconds}."""
    start = time.perf_counter()
    seed_everything(job["seed"])
    tok = build_tokenizer()
    cfg = llama_config(SIZES[job["size"]], tok)
    dtype = torch.bfloat16 if job["device"] == "cuda" else torch.float32
    with torch.device(job["device"]):
        model = LlamaForCausalLM._from_config(cfg, dtype=dtype)
    model.save_pretrained(job["policy_dir"])
    tok.save_pretrained(job["policy_dir"])
    del model
    release(job["device"] == "cuda")
    return {"status": "ok", "wall_s": time.perf_counter() - start}


def rm_params(size: Size, mode: str, device: str, batch: int):
    """The kit's RMTrainingParams for one measured run: one epoch over batch * steps pairs, a log line every step,
    no checkpoint; bfloat16 on a GPU (the 4-bit compute dtype too), float32 on CPU."""
    lora, four_bit, zero3 = MODES[mode]
    dtype = "bfloat16" if device == "cuda" else "float32"
    return from_dict(RMTrainingParams, {
        "training": {"batch_size": batch, "epochs": 1.0, "max_length": size.seq_len, "logging_steps": 1,
                     "save_steps": 10 ** 9},
        "model": {"dtype": dtype, "attn_implementation": "auto",
                  "gradient_checkpointing": size.checkpointing and not lora},
        "lora": {"enabled": lora}, "quant": {"load_in_4bit": four_bit, "compute_dtype": dtype},
        "distributed": {"n_processes": ZERO3_PROCESSES, "launcher": "torchrun", "deepspeed": "zero3"} if zero3
        else {}})


def random_pairs(n_unique: int, n_items: int, seq_len: int, vocab: int, tokenizer, seed: int) -> list[dict]:
    """`n_items` encoded pairs cycling over `n_unique` random ones (the same few pairs again and again, so a
    working training run lowers their loss within a few steps). Each side is BOS + seq_len - 2 random tokens + EOS
    with the response from a quarter in; chosen and rejected share the prompt. Items as `data.PairCollator` takes."""
    g = torch.Generator().manual_seed(seed)
    first = max(tokenizer.all_special_ids) + 1  # random tokens are never special (pad, BOS, EOS)
    start = max(1, seq_len // 4)
    unique = []
    for _ in range(n_unique):
        prompt = torch.randint(first, vocab, (start - 1,), generator=g).tolist()
        sides = [torch.randint(first, vocab, (seq_len - start - 1,), generator=g).tolist() for _ in range(2)]
        c, r = (Encoded([tokenizer.bos_token_id] + prompt + s + [tokenizer.eos_token_id], start) for s in sides)
        unique.append({"chosen": c, "rejected": r})
    return [unique[i % n_unique] for i in range(n_items)]


class StepClock(TrainerCallback):
    """Wall-clock step ends (the device synchronised first by `sync`, so a step's queued kernels count in its own
    time); no checkpoint is saved; training stops at `deadline` (time.monotonic) before `total_steps`, and the run is
    marked `timed_out`."""

    def __init__(self, total_steps: int, deadline: float, sync):
        self.total_steps, self.deadline, self.sync = total_steps, deadline, sync
        self.begin, self.ends, self.timed_out = None, [], False

    def on_train_begin(self, args, state, control, **kw):
        self.sync()
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.sync()
        self.ends.append(time.perf_counter())
        control.should_save = False  # the Trainer saves at the last step; an 8b one with its optimizer: ~100 GB
        if time.monotonic() > self.deadline and len(self.ends) < self.total_steps:
            self.timed_out = control.should_training_stop = True

    def step_times(self) -> list[float]:
        marks = [self.begin, *self.ends]
        return [b - a for a, b in zip(marks, marks[1:])]


def peak_tflops(device_name: str, override: float | None) -> tuple[float | None, str]:
    """(peak bf16 dense TFLOP/s, where it came from) for `device_name`: `override` when given, else the first
    `PEAK_TFLOPS` entry named in the device name, else (None, 'unknown device ...')."""
    if override:
        return float(override), "--peak-tflops"
    for key, value in PEAK_TFLOPS.items():
        if key in device_name.upper():
            return value, f"table ({key})"
    return None, f"unknown device {device_name!r}: give --peak-tflops"


def sanity(losses: list[float], grad_norms: list[float]) -> dict:
    """Finite losses and gradient norms, whether the loss fell (last below first), whether every step had a
    non-zero gradient; ok = finite and (loss fell or gradients non-zero)."""
    finite = bool(losses) and all(math.isfinite(x) for x in losses + grad_norms)
    fell = len(losses) > 1 and losses[-1] < losses[0]
    nonzero = bool(grad_norms) and all(g > 0 for g in grad_norms)
    return {"finite": finite, "loss_decreased": bool(fell), "grad_nonzero": nonzero,
            "ok": finite and (fell or nonzero)}


def failure(exc: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception a run raised: 'oom' for device out-of-memory (torch's own error, or the
    message other libraries raise it with), else 'error'."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "oom", text
    return "error", f"{type(exc).__name__}: {text}"


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def run_config(job: dict) -> dict:
    """Train `job["warmup"] + job["steps"]` steps of mode `job["mode"]` on the policy in `job["policy_dir"]` and
    measure the last `steps`: tokens/s, MFU, peak memory against the kit's estimate, the sanity check. Never raises
    for a failed run: out-of-memory and errors come back as the result's `status` and `reason`."""
    t0 = time.monotonic()
    deadline = t0 + job["time_box_s"]
    device = job["device"]
    size = SIZES[job["size"]]
    batch = job.get("batch") or size.batch
    cuda = device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.reset_peak_memory_stats()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak, peak_source = peak_tflops(name, job.get("peak_tflops"))
    res = {"status": "ok", "reason": "", "device": device, "device_name": name, "world": world, "batch_pairs": batch,
           "seq_len": size.seq_len, "peak_tflops": peak, "peak_tflops_source": peak_source}
    trainer = model = None
    try:
        p = rm_params(size, job["mode"], device, batch)
        spec = RewardModelSpec("goal_conditioned", contrastive_weight=0.5)
        est, est_mode = estimate_memory(p, job["policy_dir"], spec)
        flop_params = est.n_params - size.vocab * size.hidden  # the embedding is a lookup, no matrix product
        frozen = p.lora.enabled  # a frozen base has no weight gradients: forward 2N + input gradients 2N
        res.update(mode_description=est_mode, n_params=est.n_params, flop_params=flop_params,
                   flops_per_token=(4 if frozen else 6) * flop_params, estimate_gib=est.total / GIB,
                   estimate={k: getattr(est, k) / GIB for k in ("weights", "gradients", "optimizer", "activations")})
        total_steps = job["warmup"] + job["steps"]
        args = reward_training_args(p, Path(job["out_dir"]), job["seed"])  # before the model: ZeRO-3 partitions it
        seed_everything(job["seed"])
        model, tok = reward_model_from_policy(job["policy_dir"], seed=job["seed"], model_params=p.model,
                                              lora=p.lora, quant=p.quant)
        res["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        res["flash_attn"] = (flash_attn_error() or "imports") if cuda else "not used on CPU"
        res["n_trainable"] = sum(getattr(q, "ds_numel", q.numel()) for q in model.parameters() if q.requires_grad)
        # bitsandbytes' own 4-bit layers (peft's LoRA wrapper around each carries the same class name)
        res["n_4bit_layers"] = sum(type(m).__name__ == "Linear4bit" and type(m).__module__.startswith("bitsandbytes")
                                   for m in model.modules())
        pairs = random_pairs(batch * world, batch * world * total_steps, size.seq_len, size.vocab, tok, job["seed"])
        # several processes must stop at the same step (a lone one would wait in a collective): only the launcher's
        # hard time limit applies to them
        clock = StepClock(total_steps, deadline if world == 1 else math.inf,
                          torch.cuda.synchronize if cuda else (lambda: None))
        trainer = RewardTrainer(model=model, args=args, train_dataset=pairs,
                                data_collator=PairCollator(tok.pad_token_id), contrastive=p.contrastive, spec=spec,
                                callbacks=[clock])
        trainer.train()
        logs = [h for h in trainer.state.log_history if "loss" in h]  # one per step (the summary has train_loss)
        losses = [float(h["loss"]) for h in logs]
        grads = [float(h["grad_norm"]) for h in logs if h.get("grad_norm") is not None]
        times = clock.step_times()[job["warmup"]:]
        tokens = 2 * batch * size.seq_len * world
        tps = tokens * len(times) / sum(times) if times else None
        achieved = res["flops_per_token"] * tps / 1e12 if tps else None
        res.update(steps_run=len(clock.ends), timed_steps=len(times),
                   step_time_s=statistics.median(times) if times else None, tokens_per_step=tokens,
                   tokens_per_s=tps, achieved_tflops=achieved,
                   mfu=achieved / (peak * world) if achieved and peak else None,
                   losses=[_finite(x) for x in losses], grad_norms=[_finite(x) for x in grads],
                   sanity=sanity(losses, grads))
        if clock.timed_out:
            res.update(status="timeout", reason=f"stopped after {len(clock.ends)} of {total_steps} steps at the "
                                                f"{job['time_box_s']:.0f} s time box")
        elif not res["sanity"]["ok"]:
            res.update(status="failed", reason="sanity check failed")
    except Exception as e:  # noqa: BLE001 - a failed configuration is reported, the others still run
        traceback.print_exc()  # the whole story goes to the log; the result keeps the first line
        res["status"], res["reason"] = failure(e)
        e.__traceback__ = None  # the frames hold the model and activations: let them go
    finally:
        if cuda:
            res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / GIB
            res["peak_memory_source"] = "torch.cuda.max_memory_allocated"
        else:  # the process's peak resident set (Linux: KiB), everything it ever held: not comparable to the estimate
            res["peak_memory_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
            res["peak_memory_source"] = "process peak RSS"
        res["memory_vs_estimate"] = res["peak_memory_gib"] / res["estimate_gib"] \
            if cuda and res.get("estimate_gib") else None
        res["wall_s"] = time.monotonic() - t0
        del trainer, model
        release(cuda)
    return res


def release(cuda: bool) -> None:
    """Free what a finished run left (collectable cycles, the CUDA caching allocator's blocks)."""
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
