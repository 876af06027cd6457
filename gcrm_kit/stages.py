"""Entry point of stages run under a launcher: ``python -m gcrm_kit.stages <job.json>``.

Every process of a launched run reads the same job file (written by `launch.write_job`), loads the resolved params
from the run folder and calls the same stage function the notebook calls in-process. Only the main process
writes artifacts.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from pathlib import Path


def fit_reward_model_job(job: dict) -> None:
    """Train one reward model: job keys params_file, pairs_file, policy_dir, spec, rm_seed, out_dir."""
    import yaml

    from .data import PreferencePair, load_jsonl
    from .params import RMTrainingParams, RewardModelSpec, from_dict
    from .rm_training import fit_reward_model

    p = from_dict(RMTrainingParams, yaml.safe_load(Path(job["params_file"]).read_text()))
    pairs = load_jsonl(job["pairs_file"], PreferencePair)
    spec = from_dict(RewardModelSpec, job["spec"])
    fit_reward_model(p, Path(job["policy_dir"]), pairs, spec, int(job["rm_seed"]), Path(job["out_dir"]))


STAGES = {"fit_reward_model": fit_reward_model_job}


def finish_process_group() -> None:
    """Let every process reach the end before any exits, then tear the process group down. Without it a process
    that finished its share (the non-main ones return before the main one writes the artifacts) exits with the
    collective backend still live, and its shutdown can abort (SIGABRT) while the main process still works."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_now(code: int) -> None:
    """Leave the process at once with `code`, skipping the interpreter's and the native libraries' teardown.
    Used after a stage has finished and every artifact is written: that teardown (static destructors of the
    collective and thread-pool libraries loaded by torch, DeepSpeed and datasets) has aborted a process that
    had done all its work ("terminate called without an active exception", SIGABRT, no Python frame left),
    which the launcher reports as a failed run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    # a native crash in a launched process prints the Python stack of every thread into the run's log
    faulthandler.enable()
    ap = argparse.ArgumentParser(prog="python -m gcrm_kit.stages", description=__doc__)
    ap.add_argument("job", help="job JSON written by gcrm_kit.launch.write_job")
    args, _ = ap.parse_known_args(argv)  # launchers may append their own flags (e.g. --local_rank)
    job = json.loads(Path(args.job).read_text())
    if job.get("stage") not in STAGES:
        raise SystemExit(f"{args.job}: unknown stage {job.get('stage')!r}; known: {sorted(STAGES)}")
    STAGES[job["stage"]](job)
    finish_process_group()  # only after success: a barrier after a failure would wait for a process that is gone
    return 0


if __name__ == "__main__":
    exit_now(main())  # main returns only after success; a failure raises and exits the ordinary way
