"""GPU check (not collected by pytest): reward-model training steps of real sizes, the way the kit trains them.

On a machine with a GPU (made for one NVIDIA H200, about 139 GiB; every job's time box is cut to what is left of
`--budget-s`, 450 s, so a run ends within about 8 minutes), from the repository root, with torch, transformers,
peft, bitsandbytes and deepspeed installed as pyproject.toml pins them (flash-attn when it builds); nothing is
downloaded, so no network is needed. `--out DIR` puts the results where they will be kept:

    make gpu-check                                        # = python tests/benchmarks/gpu_check.py
    python tests/benchmarks/gpu_check.py                  # sizes 1b,8b; modes full,lora,qlora,zero3
    python tests/benchmarks/gpu_check.py --sizes 1b --modes full,qlora --peak-tflops 989
    python tests/benchmarks/gpu_check.py --device cpu --sizes tiny --peak-tflops 1   # the CPU smoke run (seconds)

Models are random-weight Llamas of Llama-3.2-1B and Llama-3.1-8B shapes (`tiny`: 2 layers of width 64, for CPU),
written once per size as a policy checkpoint (with the toy tokenizer; token ids are random) to a temporary folder
and loaded through `gcrm_kit.models.reward_model_from_policy`; training is `gcrm_kit.training.RewardTrainer`
(Bradley-Terry + 0.5 x the goal-conditioned contrastive term, 16 + 16 draws) with the kit's TrainingArguments
(`rm_training.reward_training_args`): bf16 on a GPU with flash-attention 2 when it imports
(`models.resolve_attn_implementation`; SDPA otherwise), float32 on CPU. Modes:

- `full`: full fine-tune (8b with gradient checkpointing); `lora`: LoRA r=16 on every projection, head trained;
- `qlora`: 4-bit nf4 backbone (bitsandbytes, the kit's `bnb_config`) + LoRA;
- `zero3`: full fine-tune under DeepSpeed ZeRO-3 (params/deepspeed/zero3.json) over 2 processes started with
  torchrun as `gcrm_kit.launch` does; it needs 2 GPUs (on CPU: 2 processes over gloo) and is skipped with a line
  saying so otherwise.

Each configuration trains `--warmup` (3) + `--steps` (5) steps of batch x 1024 tokens (1b: 8 pairs, 8b: 4 pairs per
process) on a few repeated random pairs, and times the last `--steps`. On a GPU each one runs in its own process
with a time box (killed when over it) and an out-of-memory error is reported, not raised; the whole run stops
starting configurations when `--budget-s` is spent. Results go to `<out>/gpu_check.json` (default
outputs/gpu_check/<UTC time>/; rewritten after every configuration), each process's output to `<out>/logs/`.

What to look at, per configuration (the summary table at the end):
- `status` ok (else `reason`: oom, timeout, error, failed sanity, skipped and why);
- `attn`: flash_attention_2 when flash-attn is installed and works, else sdpa;
- `MFU` = flops_per_token x tokens/s / (peak TFLOP/s x processes). flops_per_token is 6 x the parameters that do
  matrix products (all but the embedding) for a full fine-tune, 4 x for LoRA and 4-bit (a frozen base has no weight
  gradients); attention's own FLOPs and gradient checkpointing's recomputation are not counted. The peak is the bf16
  dense peak from the device name (H200 and H100: 989, A100: 312) or `--peak-tflops`;
- `peak GiB` (torch.cuda.max_memory_allocated, the highest process under ZeRO-3) against `est GiB`, the kit's
  `memory.estimate_memory` printed before real runs: a ratio above 1 means the estimate undercounts. In a bf16 full
  fine-tune without DeepSpeed expect it well below 1: the estimate counts a float32 master copy and float32 moments
  (12 bytes per parameter), while the Trainer's AdamW keeps bf16 moments of bf16 weights (4 bytes);
- `sanity`: losses and gradient norms finite, and the loss falls over the steps or the gradients are non-zero.
The exit status is 1 when a configuration that ran did not pass.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(HERE)]

import gpu_checklib  # noqa: E402
from gpu_checklib import MODES, SIZES, ZERO3_PROCESSES  # noqa: E402

from gcrm_kit.io import atomic_write_json  # noqa: E402
from gcrm_kit.launch_worker import exit_now, finish_process_group  # noqa: E402

#: seconds a configuration of each size may take (start, load, steps) before it is stopped, and the checkpoint's
#: writing; each is cut to what is left of --budget-s
PREPARE_BOX = {"tiny": 120, "1b": 120, "8b": 240}
TIME_BOX = {"tiny": 180, "1b": 120, "8b": 200}
MIN_BOX = 30  # a job that would get less than this is skipped: it could not load a model and train in time
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "deepspeed", "flash-attn", "accelerate")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="", help=f"comma list of {list(SIZES)} (default: 1b,8b on a GPU, tiny on CPU)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {list(MODES)}")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--batch", type=int, default=0, help="pairs per process and step (default: the size's)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOP/s per device for MFU")
    ap.add_argument("--out", default="", help="results folder (default: outputs/gpu_check/<UTC time>)")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="seconds for the whole run: time boxes are cut to what is left, and no job starts with under "
                         f"{MIN_BOX} s left")
    ap.add_argument("--config-timeout", type=float, default=0.0, help="seconds per configuration (default: by size)")
    ap.add_argument("--isolate", default="auto", choices=["auto", "yes", "no"],
                    help="one process per configuration with a hard time box (auto: yes on a GPU, no on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)  # a job file: run one job in this process
    args = ap.parse_args(argv)
    for key, known in (("sizes", SIZES), ("modes", MODES)):
        bad = [x for x in getattr(args, key).split(",") if x and x not in known]
        if bad:
            ap.error(f"--{key}: unknown {bad}; known: {list(known)}")
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    return args


def versions() -> dict:
    """Installed versions of the packages the check depends on (None: not installed)."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def skip_reason(mode: str, device: str, n_gpus: int) -> str | None:
    """Why `mode` cannot run here (None: it can)."""
    if MODES[mode][1] and importlib.util.find_spec("bitsandbytes") is None:
        return "4-bit needs bitsandbytes, which is not installed"
    if MODES[mode][2]:
        if importlib.util.find_spec("deepspeed") is None:
            return "ZeRO-3 needs deepspeed, which is not installed"
        if device == "cuda" and n_gpus < ZERO3_PROCESSES:
            return f"ZeRO-3 over {ZERO3_PROCESSES} processes needs {ZERO3_PROCESSES} GPUs; this machine has {n_gpus}"
    return None


def run_job(job: dict, isolate: bool, processes: int, timeout: float, log_file: Path) -> dict:
    """Run `job` (kind 'prepare' or 'train') in this process, or in `processes` launched ones (torchrun when more
    than one) that are killed after `timeout` seconds. Returns the job's result dict; a launched job that left none
    comes back as status 'timeout' or 'crashed' with the end of its log."""
    if not isolate and processes == 1:
        if job["kind"] == "prepare":
            try:
                return gpu_checklib.prepare_policy(job)
            except Exception as e:  # noqa: BLE001 - reported; the size's configurations are skipped
                return dict(zip(("status", "reason"), gpu_checklib.failure(e)))
        return gpu_checklib.run_config(job)
    job_file = atomic_write_json(Path(job["out_dir"]) / "job.json", job)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(job_file)]
    if processes > 1:  # the launcher `gcrm_kit.launch` uses for torchrun
        cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]  # this checkout's kit
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(path)}
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    if processes == 1 and job["device"] == "cuda":  # else the Trainer spreads one process over every GPU it sees
        env["CUDA_VISIBLE_DEVICES"] = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every process it started
            proc.wait()
    result = Path(job["result"])
    if result.is_file():
        res = json.loads(result.read_text())
        ranks = [json.loads(f.read_text()) for f in sorted(result.parent.glob(result.name + ".rank*"))]
        if ranks and res.get("peak_memory_gib") is not None:
            res["peak_memory_gib_per_rank"] = [res["peak_memory_gib"]] + [r.get("peak_memory_gib") for r in ranks]
            res["peak_memory_gib"] = max(x for x in res["peak_memory_gib_per_rank"] if x is not None)
            if res.get("memory_vs_estimate") is not None:
                res["memory_vs_estimate"] = res["peak_memory_gib"] / res["estimate_gib"]
        return res
    tail = " | ".join(log_file.read_text(errors="replace").strip().splitlines()[-4:])[-600:]
    if rc is None:
        return {"status": "timeout", "reason": f"killed after the {timeout:.0f} s time box; log {log_file}"}
    return {"status": "crashed", "reason": f"exit code {rc}, no result; last lines: {tail}"}


def _fmt(x, spec: str, scale: float = 1.0) -> str:
    return "-" if x is None else format(x * scale, spec)


def summary_table(configs: list[dict]) -> str:
    """A fixed-width text table of the configurations' results, with the reasons of those not ok below."""
    head = ["config", "status", "attn", "tokens/s", "step s", "MFU %", "peak GiB", "est GiB", "peak/est", "sanity"]
    rows = []
    for c in configs:
        s = c.get("sanity") or {}
        losses = [x for x in c.get("losses") or [] if x is not None]
        loss = f" ({losses[0]:.3g}->{losses[-1]:.3g})" if losses else ""
        rows.append([c["name"], c["status"], str(c.get("attn_implementation") or "-"),
                     _fmt(c.get("tokens_per_s"), ",.0f"),
                     _fmt(c.get("step_time_s"), ".3f"), _fmt(c.get("mfu"), ".1f", 100),
                     _fmt(c.get("peak_memory_gib"), ".3g"), _fmt(c.get("estimate_gib"), ".3g"),
                     _fmt(c.get("memory_vs_estimate"), ".2f"), ("ok" if s.get("ok") else "FAIL" if s else "-") + loss])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in [head] + rows]
    lines += [f"{c['name']}: {c['status']}: {c['reason']}" for c in configs if c.get("reason")]
    return "\n".join(lines)


def one_line(c: dict) -> str:
    if c["status"] == "skipped":
        return f"[gpu-check] {c['name']}: skipped ({c['reason']})"
    peak = f"peak {_fmt(c.get('peak_memory_gib'), '.3g')} GiB (estimate {_fmt(c.get('estimate_gib'), '.3g')} GiB)"
    return (f"[gpu-check] {c['name']}: {c['status']}, {_fmt(c.get('tokens_per_s'), ',.0f')} tokens/s, "
            f"MFU {_fmt(c.get('mfu'), '.1f', 100)}%, {peak}, attention {c.get('attn_implementation')}, sanity "
            f"{(c.get('sanity') or {}).get('ok')}" + (f"; {c['reason']}" if c.get("reason") else ""))


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random models only: nothing may come from the hub
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    n_gpus = torch.cuda.device_count() if device == "cuda" else 0
    isolate = args.isolate == "yes" or (args.isolate == "auto" and device == "cuda")
    if not isolate and n_gpus > 1:
        raise SystemExit(f"--isolate no with {n_gpus} GPUs visible: the Trainer would spread each single-process run "
                         "over all of them (DataParallel); use --isolate yes, or CUDA_VISIBLE_DEVICES=<one id>")
    sizes = [x for x in (args.sizes or ("1b,8b" if device == "cuda" else "tiny")).split(",") if x]
    modes = [x for x in args.modes.split(",") if x]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else ROOT / "outputs" / "gpu_check" / stamp
    (out / "logs").mkdir(parents=True, exist_ok=True)
    report = {"started": stamp, "finished": None, "argv": sys.argv[1:] if argv is None else list(argv),
              "device": device, "n_gpus": n_gpus, "isolated": isolate, "versions": versions(),
              "steps": args.steps, "warmup": args.warmup, "configs": [], "ok": None}
    results = out / "gpu_check.json"
    start = time.monotonic()
    print(f"[gpu-check] device {device} ({n_gpus} GPUs), sizes {sizes}, modes {modes}; results: {results}", flush=True)

    def add(c: dict) -> None:
        report["configs"].append(c)
        atomic_write_json(results, report)
        print(one_line(c), flush=True)

    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"gpu_check_{size}_"))
        try:
            left = args.budget_s - (time.monotonic() - start)
            prep = {"kind": "prepare", "size": size, "device": device, "seed": args.seed,
                    "policy_dir": str(work / "policy"), "out_dir": str(work / "prepare"),
                    "result": str(work / "prepare" / "result.json")}
            Path(prep["out_dir"]).mkdir()
            done = run_job(prep, isolate, 1, min(PREPARE_BOX[size], left), out / "logs" / f"{size}_prepare.log") \
                if left > MIN_BOX else {"status": "skipped", "reason": "time budget spent"}
            if done["status"] == "ok":
                print(f"[gpu-check] {size}: random policy checkpoint written in {done['wall_s']:.1f} s", flush=True)
            for mode in modes:
                name = f"{size}/{mode}"
                left = args.budget_s - (time.monotonic() - start)
                why = (f"no policy checkpoint ({done['status']}: {done.get('reason', '')})" if done["status"] != "ok"
                       else skip_reason(mode, device, n_gpus) or ("time budget spent" if left < MIN_BOX else None))
                if why:
                    add({"name": name, "size": size, "mode": mode, "status": "skipped", "reason": why})
                    continue
                box = min(args.config_timeout or TIME_BOX[size], left)
                job = {"kind": "train", "size": size, "mode": mode, "device": device, "seed": args.seed,
                       "steps": args.steps, "warmup": args.warmup, "batch": args.batch, "peak_tflops": args.peak_tflops,
                       "policy_dir": prep["policy_dir"], "out_dir": str(work / mode),
                       "result": str(work / mode / "result.json"), "time_box_s": 0.85 * box}
                Path(job["out_dir"]).mkdir()
                processes = ZERO3_PROCESSES if MODES[mode][2] else 1
                res = run_job(job, isolate, processes, box, out / "logs" / f"{size}_{mode}.log")
                add({"name": name, "size": size, "mode": mode, "reason": "", **res})
        finally:
            shutil.rmtree(work, ignore_errors=True)  # an 8b checkpoint is 16 GB
    ran = [c for c in report["configs"] if c["status"] != "skipped"]
    report["ok"] = all(c["status"] == "ok" for c in ran)
    report["finished"] = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    report["wall_s"] = time.monotonic() - start
    atomic_write_json(results, report)
    print("\n" + summary_table(report["configs"]), flush=True)
    print(f"\n[gpu-check] {'all passed' if report['ok'] else 'FAILED'} in {report['wall_s']:.0f} s; {results}")
    return 0 if report["ok"] else 1


def worker(job_file: str) -> None:
    """Run one job file in this process (one of several under torchrun), write its result, and leave at once."""
    job = json.loads(Path(job_file).read_text())
    rank = int(os.environ.get("RANK", "0"))
    res = gpu_checklib.prepare_policy(job) if job["kind"] == "prepare" else gpu_checklib.run_config(job)
    atomic_write_json(job["result"] + (f".rank{rank}" if rank else ""), res)
    if res["status"] == "ok":
        finish_process_group()  # a failed process may have left the others: no barrier then
    exit_now(0)


if __name__ == "__main__":
    _args = parse_args()
    if _args.worker:
        worker(_args.worker)
    sys.exit(main())
