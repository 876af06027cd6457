"""What every process of a launched run does around its job: read the job file (written by `launch.write_job`),
call the job function the stage's worker module names for it, wait for the other processes, and leave without the
native libraries' teardown. A stage's worker module (e.g. ``gcrm_kit.rm_training.worker``) holds its job functions
and calls `run_job` from its ``__main__``; this module knows no stage.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from pathlib import Path
from typing import Callable


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


def run_job(jobs: dict[str, Callable[[dict], None]], argv: list[str] | None = None, prog: str = "") -> int:
    """Parse ``<job.json>`` from `argv` (default: the command line), call ``jobs[job["stage"]](job)`` and, after it
    succeeded, wait for the other processes (`finish_process_group`). Returns 0. An unknown stage exits with a
    message naming the job file, the stage and the known ones."""
    # a native crash in a launched process prints the Python stack of every thread into the run's log
    faulthandler.enable()
    ap = argparse.ArgumentParser(prog=prog or None, description="Run one job of a launched stage.")
    ap.add_argument("job", help="job JSON written by gcrm_kit.launch.write_job")
    args, _ = ap.parse_known_args(argv)  # launchers may append their own flags (e.g. --local_rank)
    job = json.loads(Path(args.job).read_text())
    if job.get("stage") not in jobs:
        raise SystemExit(f"{args.job}: unknown stage {job.get('stage')!r}; known: {sorted(jobs)}")
    jobs[job["stage"]](job)
    finish_process_group()  # only after success: a barrier after a failure would wait for a process that is gone
    return 0
