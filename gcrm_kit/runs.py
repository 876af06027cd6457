"""Run folders, the artifact cache and seeding (atomic writes: `gcrm_kit.io`).

A run folder is ``<output_root>/<notebook>/<params-stem>/<run-id>/`` with ``params.resolved.yaml``, ``env.txt``
and everything the stage writes. Run folders are created with an exclusive ``mkdir``, so a run never writes
into an earlier one. Files are written to a temporary name and renamed, so a killed run leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .io import _json_default, atomic_write_json, atomic_write_text, project_root, resolve_output_root
from .params.core import ParamsError, dump_yaml, read_yaml

CACHE_DIRNAME = "_cache"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA). The one place seeds are set."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def params_hash(obj: Any, length: int = 12) -> str:
    """A stable short hash of a JSON-able object (dict keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def git_sha(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
        return sha + ("-dirty" if dirty.stdout.strip() else "") if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_report() -> str:
    """Python, platform, key package versions, torch/CUDA/GPU: the text saved as env.txt in every run."""
    import torch

    lines = [f"python: {sys.version.split()[0]}", f"platform: {platform.platform()}"]
    for pkg in ("gcrm_kit", "torch", "transformers", "accelerate", "datasets", "peft", "bitsandbytes",
                "deepspeed", "flash-attn", "papermill", "plotly", "scikit-learn", "tokenizers"):
        try:
            lines.append(f"{pkg}: {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{pkg}: not installed")
    lines.append(f"cuda: {torch.version.cuda or 'none'} (available: {torch.cuda.is_available()})")
    for i in range(torch.cuda.device_count()):
        lines.append(f"gpu{i}: {torch.cuda.get_device_name(i)}")
    lines.append(f"torch threads: {torch.get_num_threads()}")
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    """An open run folder."""

    dir: Path
    notebook: str
    params: Any

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path(name), obj)

    @property
    def cache_root(self) -> Path:
        return resolve_output_root(self.params.output_root) / CACHE_DIRNAME


def start_run(params) -> Run:
    """Open the run folder for `params` and write params.resolved.yaml, env.txt and git.txt into it (a resumed
    run keeps the first attempt's env.txt and git.txt and appends a section to each: see `_record_attempt`).

    `params` is a notebook's params dataclass (it knows its notebook name and params name). When its `run_dir`
    is set, that existing folder is reused (prepared by `gcrm run`, or an interrupted run being resumed from its
    checkpoints) and its params must equal `params`; otherwise a new folder
    ``<output_root>/<notebook>/<params_name>/<time>_seed<seed>`` is created, never an existing one. Seeds
    Python, NumPy and torch with `params.seed` last.
    """
    resolved = dump_yaml(params)
    if params.run_dir:
        run_dir = Path(params.run_dir).expanduser()
        if not run_dir.is_absolute():
            run_dir = project_root() / run_dir
        prev = run_dir / "params.resolved.yaml"
        if prev.is_file() and strip_run_dir(prev.read_text()) != strip_run_dir(resolved):
            diff = differing_keys(read_yaml(prev.read_text()), read_yaml(resolved))
            raise ParamsError(f"run_dir={params.run_dir!r}: a resumed run must use the params it was started with; "
                              f"{prev} differs at " + "; ".join(diff))
        if not prev.is_file() and run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(f"run_dir={params.run_dir!r} exists and is not a run folder; not writing into it")
        run_dir.mkdir(parents=True, exist_ok=True)
        run = Run(run_dir.resolve(), params.notebook, params)
    else:
        run = Run(new_run_dir(params).resolve(), params.notebook, params)
    atomic_write_text(run.dir / "params.resolved.yaml", resolved)
    _record_attempt(run.dir)
    seed_everything(params.seed)  # the one place a run is seeded: every notebook starts here
    freeze_imported_objects()
    return run


def freeze_imported_objects() -> None:
    """Take every object alive now out of the garbage collector's later passes (`gc.freeze`), after one collection
    so that no garbage is kept. What exists when a run starts is mostly the imported libraries (torch, transformers,
    plotly: some 700k objects) and lives as long as the process; a full collection walks them all, about a second on
    a 2-core CPU, and the Trainer (accelerate's `free_memory`) runs one before every training. Numbers do not
    change: only how much the collector walks."""
    gc.collect()
    gc.freeze()


#: environment variable naming the run folder this process (and the notebook kernel it starts) opened
ATTEMPT_ENV = "GCRM_RUN_ATTEMPT_DIR"


def _record_attempt(run_dir: Path) -> None:
    """Write env.txt and git.txt for the first attempt at a run folder; a later attempt (a resume) keeps them and
    appends its own section to each (``attempt <n> (<time>): <commit>`` in git.txt, the environment report under
    ``--- attempt <n> ...`` in env.txt), warning when its commit differs from the first attempt's.

    `gcrm run` opens the folder and the notebook it executes opens it again: one attempt. The folder is noted in
    the environment (inherited by the notebook's kernel), and a process that finds its own folder there adds
    nothing."""
    git_file, env_file = run_dir / "git.txt", run_dir / "env.txt"
    sha = git_sha(project_root())
    same_attempt = os.environ.get(ATTEMPT_ENV) == str(run_dir)
    os.environ[ATTEMPT_ENV] = str(run_dir)
    if not git_file.is_file():
        atomic_write_text(env_file, environment_report())
        atomic_write_text(git_file, sha + "\n")
        return
    if same_attempt:
        return
    lines = git_file.read_text().splitlines()
    first = lines[0].strip() if lines else "unknown"
    n = 2 + sum(1 for x in lines if x.startswith("attempt "))  # the first attempt has no "attempt" line
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    atomic_write_text(git_file, "\n".join(lines) + f"\nattempt {n} ({stamp}): {sha}\n")
    old_env = env_file.read_text() if env_file.is_file() else ""
    atomic_write_text(env_file, old_env.rstrip("\n") + f"\n\n--- attempt {n} ({stamp}) ---\n{environment_report()}")
    if sha != first:
        warnings.warn(f"{run_dir}: resumed (attempt {n}) at commit {sha}, but the run was started at {first}; "
                      "its results mix the two (both are in git.txt)", stacklevel=3)


def new_run_dir(params) -> Path:
    """Create and return a new, empty run folder for `params` (exclusive mkdir)."""
    base = resolve_output_root(params.output_root) / params.notebook / params.params_stem
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        d = base / (f"{stamp}_seed{params.seed}" + (f"_{k}" if k else ""))
        try:
            d.mkdir()  # exclusive: an existing run is never reused
            return d
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def differing_keys(old: Any, new: Any, key: str = "") -> list[str]:
    """Where two params mappings differ: ``"<dotted key>: <old> (run) vs <new> (now)"`` per differing leaf
    (`run_dir` ignored)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in dict.fromkeys([*old, *new]):
            if k == "run_dir" and not key:
                continue
            sub = f"{key}.{k}" if key else str(k)
            if k not in old or k not in new:
                out.append(f"{sub}: {'absent' if k not in old else repr(old[k])} (run) vs "
                           f"{'absent' if k not in new else repr(new[k])} (now)")
            else:
                out += differing_keys(old[k], new[k], sub)
        return out
    return [] if old == new else [f"{key}: {old!r} (run) vs {new!r} (now)"]


def strip_run_dir(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("run_dir:"))


def cached(cache_root: Path, kind: str, key: Any, build: Callable[[Path], None]) -> Path:
    """Return the folder of the artifact `kind` built from `key`, building it first if needed.

    The folder is ``<cache_root>/<kind>/<hash(key)>``. `build(tmp_dir)` writes the artifact into a ``.partial``
    folder that is renamed into place only when `build` returns, so a half-built artifact is never used; an
    interrupted build finds its ``.partial`` folder again and may resume from what it holds (checkpoints).
    `key.json` beside the artifact says what produced it.
    """
    h = params_hash(key)
    final = cache_root / kind / h
    if (final / "key.json").is_file():
        return final
    partial = cache_root / kind / f"{h}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    build(partial)
    atomic_write_json(partial / "key.json", key)
    if final.exists():  # built concurrently by another process: keep theirs
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.replace(partial, final)
    return final
