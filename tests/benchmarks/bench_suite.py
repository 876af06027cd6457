"""The benchmark suite in one command (not collected by pytest): every benchmark of this folder, one report.

    python tests/benchmarks/bench_suite.py --rm-run outputs/01_rm_training/toy/<run>     # everything (~15 min)
    python tests/benchmarks/bench_suite.py            # without a finished 01 run: the parts that need one are skipped
    python tests/benchmarks/bench_suite.py --quick                        # minutes: fewer steps, sizes and repeats
    python tests/benchmarks/bench_suite.py --only training,scoring --sizes toy,toy_x2,toy_x4 --threads 2
    make bench RM_RUN=outputs/01_rm_training/toy/<run>

Parts (`--only` picks some):

- ``training``: reward-model training throughput and peak memory, TRL's `RewardTrainer` against the kit with
  lambda = 0, with the contrastive term and with GRM, several model sizes, plus the paired forward + backward
  measurement of the two targets (`bench_training.py`);
- ``qvalues``: per-token Q-values from one pass against re-scoring every prefix (`bench_qvalues.py`);
- ``scoring``: scoring throughput against batch size (`bench_scoring.py`);
- ``pruning``: online pruning against generating everything (`bench_online_pruning.py`; needs `--rm-run`);
- ``steering``: guided decoding against plain sampling and best-of-N (`bench_steering.py`; needs `--rm-run`);
- ``end_to_end``: wall-clock of the README's main command (`gcrm run all --params toy`) on the toy default, read
  from the papermill metadata of the latest finished run folder of each notebook under `--runs-root`; with
  `--end-to-end` the command is run and timed instead (tens of minutes).

Writes `results.json` (everything, with the configuration and machine) and `results.md` (the tables) to a new run
folder `<output-root>/benchmarks/<name>/<time>_seed0/` (never an earlier one), with env.txt and git.txt. Timings are
wall-clock on whatever machine runs it and depend on its load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_training  # noqa: E402
from benchlib import machine, spread  # noqa: E402

PARTS = ["training", "qvalues", "scoring", "pruning", "steering", "end_to_end"]
NEEDS_RM_RUN = {"pruning", "steering"}


def part_training(args, out: Path) -> dict:
    res = bench_training.run_from_args(args)
    return {"results": res, "markdown": bench_training.markdown(res)}


def part_qvalues(args, out: Path) -> dict:
    import bench_qvalues

    argv = ["--n-seq", str(args.qvalues_seqs), "--repeats", str(args.repeats), "--threads", str(args.threads),
            "--device", args.device, "--json", str(out / "qvalues.json")]
    s = bench_qvalues.main(argv)
    md = (f"{s['n_seq']} toy solutions, {s['model']}, {s['repeats']} repeats (median), {args.threads} thread(s); "
          f"peak memory: {s['peak_kind']}.\n\n"
          "| method | seconds, median [min, max] | valued tokens/s | tokens through the model | peak MiB |\n"
          "|---|---|---|---|---|\n")
    for m in ("one_pass", "prefix_rescoring"):
        sp = spread(s.get(f"{m}_all_seconds") or [s[f"{m}_seconds"]])
        md += (f"| {m} | {s[f'{m}_seconds']:.3f} [{sp['min']:.3f}, {sp['max']:.3f}] | "
               f"{s[f'{m}_valued_tokens_per_s']:.0f} | {s[f'{m}_forward_tokens']} | {s[f'{m}_peak_mib']:.0f} |\n")
    md += (f"\nOne pass is {s['speedup']:.1f}x faster and pushes {s['forward_token_ratio']:.1f}x fewer tokens through "
           f"the model; largest difference between the two methods' Q-values {s['max_abs_diff_q']:.1e}.\n")
    return {"results": s, "markdown": md}


def part_scoring(args, out: Path) -> dict:
    import bench_scoring

    res = bench_scoring.run([int(b) for b in args.score_batch_sizes.split(",")], args.scoring_seqs, args.repeats,
                            args.threads, device=args.device)
    return {"results": res, "markdown": bench_scoring.markdown(res)}


def part_pruning(args, out: Path) -> dict:
    import bench_online_pruning

    argv = ["--rm-run", args.rm_run, "--questions", str(args.pruning_questions), "--n", "8", "--chunks", "4,16",
            "--prune-shares", "0.5", "--repeats", str(args.repeats), "--device", args.device,
            "--out", str(out / "pruning.json")]
    res = bench_online_pruning.main(argv)
    md = (f"{res['env']['samples']} samples ({args.pruning_questions} questions x 8), median of {args.repeats} "
          f"interleaved repeats, {res['env']['torch_threads']} thread(s), reward model of {args.rm_run}.\n\n"
          "| config | chunk | share pruned | policy tokens saved | seconds | time vs generate_all |\n"
          "|---|---|---|---|---|---|\n")
    for r in res["rows"]:
        md += (f"| {r['config']} | {r['chunk']} | {100 * r['share_pruned']:.0f}% | "
               f"{100 * r['share_tokens_saved']:.0f}% | {r['seconds']:.2f} (min {min(r['seconds_all']):.2f}, "
               f"max {max(r['seconds_all']):.2f}) | {1 - r['share_seconds_saved_vs_generate_all']:.2f}x |\n")
    return {"results": res, "markdown": md}


def part_steering(args, out: Path) -> dict:
    import bench_steering

    path = out / "steering.json"
    bench_steering.main(["--rm-run", args.rm_run, "--n-prompts", str(args.steering_prompts), "--repeats",
                         str(args.repeats), "--device", args.device, "--out", str(path)])
    res = json.loads(path.read_text())
    md = (f"{res['n_prompts']} prompts, {res['repeats']} repeats (median, min-max), {res['torch_threads']} "
          f"thread(s), reward model {res['reward_model']}; best-of-N with N = {res['best_of_n']} (matched policy "
          "tokens).\n\n| method | seconds | min-max | vs plain | policy tokens/prompt | RM tokens/prompt |\n"
          "|---|---|---|---|---|---|\n")
    for name, r in res["methods"].items():
        md += (f"| {name} | {r['seconds_median']:.2f} | {r['seconds_min']:.2f}-{r['seconds_max']:.2f} | "
               f"{r['seconds_vs_plain']:.2f}x | {r['policy_tokens_per_prompt']:.1f} | "
               f"{r['rm_tokens_per_prompt']:.1f} |\n")
    return {"results": res, "markdown": md}


def notebook_durations(output_root: Path, params_name: str = "toy") -> list[dict]:
    """For each notebook with run folders `<output_root>/<notebook>/<params_name>/<run>/`, the latest run whose
    executed notebook `<notebook>.ipynb` carries papermill metadata with a duration and no exception.
    Returns [{"notebook", "run", "seconds", "start", "end"}], sorted by notebook."""
    rows = []
    for nb_dir in sorted(p for p in output_root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        runs = sorted((nb_dir / params_name).glob("*/")) if (nb_dir / params_name).is_dir() else []
        for run in reversed(runs):
            ipynb = run / f"{nb_dir.name}.ipynb"
            if not ipynb.is_file():
                continue
            try:
                pm = json.loads(ipynb.read_text()).get("metadata", {}).get("papermill", {})
            except (OSError, json.JSONDecodeError):
                continue
            if pm.get("duration") is not None and not pm.get("exception"):
                rows.append({"notebook": nb_dir.name, "run": str(run), "seconds": float(pm["duration"]),
                             "start": pm.get("start_time"), "end": pm.get("end_time")})
                break
    return rows


def part_end_to_end(args, out: Path) -> dict:
    if args.end_to_end:
        cmd = [sys.executable, "-m", "gcrm_kit.cli", "run", "all", "--params", "toy"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        secs = time.perf_counter() - t0
        res = {"measured": True, "command": "gcrm run all --params toy", "seconds": secs, "returncode": proc.returncode}
        md = f"`gcrm run all --params toy`, run and timed now: {secs / 60:.1f} min (exit status {proc.returncode}).\n"
        return {"results": res, "markdown": md}
    root = Path(args.runs_root or args.output_root).expanduser()
    root = root if root.is_absolute() else ROOT / root
    rows = notebook_durations(root) if root.is_dir() else []
    total = sum(r["seconds"] for r in rows)
    # what `gcrm run all --params toy` runs: every notebook with a toy params file
    expected = sorted(p.parent.name for p in (ROOT / "params").glob("*/toy.yaml"))
    missing = sorted(set(expected) - {r["notebook"] for r in rows})
    res = {"measured": False, "command": "gcrm run all --params toy", "notebooks": rows, "seconds": total,
           "complete": not missing, "without_finished_run": missing}
    if not rows:
        return {"results": res, "markdown": f"No finished toy run folders under {root}: nothing to read (run "
                                            "`make toy`, or pass --end-to-end to run and time it).\n"}
    md = ("Read from the papermill metadata of the latest finished toy run of each notebook (not re-run; runs may "
          "have shared the machine with other work):\n\n| notebook | run | minutes |\n|---|---|---|\n")
    for r in rows:
        md += f"| {r['notebook']} | {Path(r['run']).name} | {r['seconds'] / 60:.1f} |\n"
    md += f"| **all{' found' if missing else ''}** | | **{total / 60:.1f}** |\n"
    if missing:
        md += (f"\nNo finished toy run of {', '.join(missing)} under {root}: the total is a lower bound of the main "
               "command's time.\n")
    return {"results": res, "markdown": md}


def versions() -> dict:
    out = {}
    for pkg in ("torch", "transformers", "trl", "accelerate", "datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def make_run_dir(output_root: str, name: str) -> Path:
    """A new run folder `<output_root>/benchmarks/<name>/<time>_seed0` with env.txt and git.txt."""
    from gcrm_kit.runs import environment_report, git_sha, new_run_dir
    from gcrm_kit.io import atomic_write_text

    d = new_run_dir(SimpleNamespace(output_root=output_root, notebook="benchmarks", params_stem=name, seed=0))
    atomic_write_text(d / "env.txt", environment_report())
    atomic_write_text(d / "git.txt", git_sha(ROOT) + "\n")
    return d


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts, from {PARTS}")
    ap.add_argument("--rm-run", default="", help="a finished 01_rm_training run folder (pruning, steering)")
    ap.add_argument("--name", default="", help="run folder name under benchmarks/ (default: 'default' or 'quick')")
    ap.add_argument("--output-root", default="outputs", help="where the benchmark's run folder goes")
    ap.add_argument("--runs-root", default="", help="where the toy runs timed by `end_to_end` are (default: "
                                                    "--output-root)")
    ap.add_argument("--quick", action="store_true", help="toy size only, fewer steps and repeats")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the q-value, scoring, pruning, steering parts")
    ap.add_argument("--qvalues-seqs", type=int, default=64)
    ap.add_argument("--scoring-seqs", type=int, default=256)
    ap.add_argument("--score-batch-sizes", default="1,8,32,128")
    ap.add_argument("--pruning-questions", type=int, default=25)
    ap.add_argument("--steering-prompts", type=int, default=50)
    ap.add_argument("--end-to-end", action="store_true", help="run and time `gcrm run all --params toy` (long)")
    bench_training.add_arguments(ap)
    ap.set_defaults(sizes="toy,toy_x2")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.warmup, args.paired_steps, args.repeats = "toy", 4, 2, 6, 2
        args.qvalues_seqs, args.scoring_seqs, args.pruning_questions, args.steering_prompts = 16, 64, 8, 16
    args.name = args.name or ("quick" if args.quick else "default")
    return args


def main(argv=None) -> Path:
    """Run the chosen parts; returns the run folder holding results.json and results.md."""
    args = parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {PARTS}")
    if args.rm_run:
        args.rm_run = str(Path(args.rm_run).expanduser().resolve())
    import torch

    torch.set_num_threads(args.threads)  # the parts run here (scoring, pruning, steering) use the same count
    run_dir = make_run_dir(args.output_root, args.name)
    print(f"[bench] writing to {run_dir}", flush=True)
    from gcrm_kit.io import atomic_write_json, atomic_write_text

    results = {"config": {"argv": sys.argv[1:] if argv is None else list(argv), "parts": parts,
                          "machine": machine(args.threads, args.device), "versions": versions(),
                          "rm_run": args.rm_run or None}, "parts": {}, "skipped": {}, "seconds": {}}
    md = ["# Benchmarks", "", f"Machine: {results['config']['machine']}. Versions: "
          + ", ".join(f"{k} {v}" for k, v in results["config"]["versions"].items()) + ".", ""]
    with tempfile.TemporaryDirectory() as scratch:
        for part in parts:
            title = part.replace("_", " ").capitalize()
            if part in NEEDS_RM_RUN and not args.rm_run:
                why = "needs a finished 01_rm_training run: pass --rm-run outputs/01_rm_training/toy/<run>"
                print(f"[bench] {part}: skipped ({why})", flush=True)
                results["skipped"][part] = why
                md += [f"## {title}", "", f"Skipped: {why}.", ""]
                continue
            print(f"[bench] {part} ...", flush=True)
            t0 = time.perf_counter()
            out = globals()[f"part_{part}"](args, Path(scratch))
            results["seconds"][part] = time.perf_counter() - t0
            results["parts"][part] = out["results"]
            md += [f"## {title}", "", out["markdown"]]
            # written after every part, so an interrupted suite keeps what it measured
            atomic_write_json(run_dir / "results.json", results)
            atomic_write_text(run_dir / "results.md", "\n".join(md))
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_text(run_dir / "results.md", "\n".join(md))
    print("\n".join(md))
    print(f"[bench] results in {run_dir}", flush=True)
    return run_dir


if __name__ == "__main__":
    main()
