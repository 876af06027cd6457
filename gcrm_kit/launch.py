"""Run a stage in-process, or through the DeepSpeed / torchrun launcher when params ask for more than one process.

A launched stage is described by a small JSON job file (the worker module to run, which of its jobs, where its
inputs and outputs are; the science parameters are read back from the params file it names). The launcher starts
``python -m <module> <job.json>`` once per process (notebook 01: ``gcrm_kit.rm_training.worker``); its output,
progress bars included, is streamed into the caller (the notebook) as it comes and kept in a log file beside the
job. The caller then goes on with the artifacts the stage saved. A failed launch raises `LaunchError` with the
log's last lines; launching the same job again resumes from the stage's last checkpoint.
"""

from __future__ import annotations

import codecs
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .io import atomic_write_json, project_root

DEEPSPEED_CONFIG_DIR = Path("params") / "deepspeed"


class LaunchError(RuntimeError):
    """A launched stage exited with an error; the message names the job, the exit code and the log file."""


def deepspeed_config_path(name: str) -> Path | None:
    """`name` of a config in params/deepspeed/ (`zero3`), or a JSON path -> its path; empty -> None.
    Raises FileNotFoundError listing the available configs."""
    if not name:
        return None
    p = Path(name).expanduser()
    if p.suffix == ".json":
        p = p if p.is_absolute() else project_root() / p
    else:
        p = project_root() / DEEPSPEED_CONFIG_DIR / f"{name}.json"
    if not p.is_file():
        have = sorted(x.stem for x in (project_root() / DEEPSPEED_CONFIG_DIR).glob("*.json"))
        raise FileNotFoundError(f"distributed.deepspeed={name!r}: {p} not found; available: {have}")
    return p


def free_port() -> int:
    """A free TCP port on the loopback interface for the launcher's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visible_gpu_ids(visible: str | None = None) -> list[int] | None:
    """The GPU ids in CUDA_VISIBLE_DEVICES (`visible`, default this process's environment); None when it is unset
    or empty. Raises ValueError when it names GPUs other than by index (UUIDs, MIG instances)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not visible or not visible.strip():
        return None
    ids = [x.strip() for x in visible.split(",") if x.strip()]
    if not all(x.isdigit() for x in ids):
        raise ValueError(f"CUDA_VISIBLE_DEVICES={visible!r}: the deepspeed launcher takes GPU indices (like 4,5,6,7), "
                         "not UUIDs or MIG names; give indices, or use distributed.launcher: torchrun")
    return [int(x) for x in ids]


def launch_command(launcher: str, n_processes: int, module: str, job_file: Path, port: int,
                   visible_devices: str | None = None) -> list[str]:
    """The command line that runs ``python -m <module> <job_file>`` in `n_processes` processes on this node.

    The deepspeed launcher drops CUDA_VISIBLE_DEVICES (`visible_devices`, default this process's) when given
    --num_gpus and would start on GPUs 0..n-1 whatever the job was given; when it is set, the GPUs are passed as
    ``--include localhost:<ids>`` instead (their number must be `n_processes`), and `run_launched` leaves the
    variable out of the launcher's environment so its ids are read as the machine's."""
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
                "-m", module, str(job_file)]
    if launcher == "deepspeed":
        ids = visible_gpu_ids(visible_devices)
        if ids is None:
            gpus = f"--num_gpus={n_processes}"
        elif len(ids) != n_processes:
            raise ValueError(f"distributed.n_processes={n_processes}, but CUDA_VISIBLE_DEVICES gives "
                             f"{len(ids)} GPU(s) ({','.join(map(str, ids))}); the deepspeed launcher runs one process "
                             "per GPU: make the two agree")
        else:
            gpus = "--include=localhost:" + ",".join(map(str, ids))
        return [sys.executable, "-m", "deepspeed.launcher.runner", gpus,
                f"--master_port={port}", "--no_local_rank", "--module", module, str(job_file)]
    raise ValueError(f"unknown launcher {launcher!r}; expected 'torchrun' or 'deepspeed'")


def write_job(job_file: Path, module: str, stage: str, **fields) -> Path:
    """Write the job description a launched stage reads: {"module": the worker module every process runs with
    ``python -m``, "stage": which of its jobs, **fields} (paths as strings)."""
    return atomic_write_json(job_file, {"module": module, "stage": stage,
                                        **{k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}})


def failure_excerpt(output: str, n_lines: int = 25) -> str:
    """The part of a failed launch's output worth reading: the launcher's own traceback and summary say only which
    process died, so keep the workers' last lines before them (where their error is) and the summary's exit codes."""
    lines = [x for x in output.replace("\r", "\n").splitlines() if x.strip()]
    summary = next((i for i, x in enumerate(lines) if "ChildFailedError" in x), None)
    if summary is None:
        return "\n".join(lines[-n_lines:])
    start = max((i for i, x in enumerate(lines[:summary]) if x.startswith("Traceback (most recent call last)")),
                default=summary)
    codes = [x.strip() for x in lines[summary:] if x.strip().startswith(("rank", "exitcode", "traceback"))]
    return "\n".join(lines[max(0, start - n_lines):start] + ["[launcher summary]"] + codes)


def run_launched(job_file: Path, n_processes: int, launcher: str = "torchrun", log_file: Path | None = None,
                 stream=None) -> Path:
    """Run the job in `job_file` under `launcher` with `n_processes` processes, streaming its output to `stream`
    (default: this process's stdout, i.e. the notebook) and to `log_file` (default: beside the job).
    Returns the log file. Raises LaunchError when the launched processes fail."""
    job_file = Path(job_file).resolve()
    log_file = Path(log_file) if log_file else job_file.with_suffix(".log")
    stream = stream or sys.stdout
    job = json.loads(job_file.read_text())
    if not job.get("module"):
        raise LaunchError(f"{job_file}: no 'module' key (the worker module each process runs with python -m); "
                          "write the job with launch.write_job")
    cmd = launch_command(launcher, n_processes, job["module"], job_file, free_port())
    env = os.environ.copy()
    if launcher == "deepspeed" and visible_gpu_ids() is not None:
        env.pop("CUDA_VISIBLE_DEVICES")  # the GPUs are in --include, as machine ids (see launch_command)
    # the launched processes import the same gcrm_kit as this one (a checkout that is not installed included)
    kit_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([kit_root] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    # DeepSpeed's collectives call torch.distributed functions that warn on every step; keep the log readable
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    print(f"[gcrm] launching {job['stage']} on {n_processes} processes with "
          f"{launcher}; log: {log_file}", file=stream, flush=True)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=project_root(), env=env,
                                start_new_session=True)
        try:
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                text = decoder.decode(chunk)
                stream.write(text)
                stream.flush()
                log.write(text)
                tail = (tail + text)[-20000:]
            rc = proc.wait()
        except BaseException:
            # the notebook was interrupted: stop every launched process, not only the launcher
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
    if rc != 0:
        raise LaunchError(f"{launcher} run of {job_file} exited with code {rc}; full log: {log_file}\n"
                          f"last lines:\n{failure_excerpt(tail)}\n"
                          "Running the same step again resumes from its last checkpoint.")
    return log_file
