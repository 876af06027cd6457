"""Executing a notebook headless: the one path by which every notebook runs outside JupyterLab (`gcrm run`, and a
later notebook that needs a notebook-01 run it cannot find). Papermill runs the notebook's own cells, so the
headless run and the interactive one are the same ordered steps."""

from __future__ import annotations

import time
from pathlib import Path

from .io import atomic_write_json, project_root
from .params import load_params, to_dict
from .runs import start_run


def params_path(notebook: str, name: str) -> Path:
    """`name` is a file path, or a params name looked up in params/<notebook>/<name>.yaml."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    return project_root() / "params" / notebook / f"{name}.yaml"


def run_notebook(notebook: str, params_name: str, run_dir: str | None = None, log_output: bool = True,
                 overrides: dict | None = None) -> Path:
    """Validate params, open the run folder, execute the notebook into it. Returns the run folder.

    `params_name` is a params name or a YAML path (see `params_path`); `overrides` replaces top-level fields of the
    loaded params (e.g. ``{"output_root": ...}``) before the run folder is made."""
    import papermill as pm  # only when a notebook is run (see failure_of)

    p = load_params(notebook, params_path(notebook, params_name))
    for key, value in (overrides or {}).items():
        setattr(p, key, value)
    if run_dir:
        p.run_dir = str(Path(run_dir).resolve())
    # the run folder exists (with params.resolved.yaml) before papermill writes the executed notebook into it;
    # the notebook's own start_run then finds and reuses it
    p.run_dir = str(start_run(p).dir)
    nb = project_root() / "notebooks" / f"{notebook}.ipynb"
    run = Path(p.run_dir)
    out = executed_notebook_path(run, notebook)
    print(f"[gcrm] {notebook} with {params_path(notebook, params_name)} -> {run}", flush=True)
    try:
        pm.execute_notebook(str(nb), str(out), parameters=to_dict(p), kernel_name="python3",
                            cwd=str(nb.parent), log_output=log_output, progress_bar=False)
    except BaseException as e:  # a cell's error, a kernel that died, or Ctrl-C: the folder says so
        atomic_write_json(run / FAILED_MARKER, {
            "notebook": notebook, "executed_notebook": out.name, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            **failure_of(e)})
        raise
    (run / FAILED_MARKER).unlink(missing_ok=True)  # a resumed attempt that finished clears the earlier failure
    print(f"[gcrm] done: {run}", flush=True)
    return run


def failure_of(e: BaseException) -> dict:
    """The error of a failed execution, as the marker records it: the cell's error and its execution count when a
    cell raised, else the exception itself."""
    # papermill (and nbformat, jsonschema) are imported only when a notebook is run: every notebook kernel imports
    # this module through rm_runs, and the import would cost each of them about two seconds
    from papermill.exceptions import PapermillExecutionError

    if isinstance(e, PapermillExecutionError):
        return {"error": f"{e.ename}: {e.evalue}", "cell": e.exec_count}
    return {"error": f"{type(e).__name__}: {str(e)[-2000:]}"}


FAILED_MARKER = "FAILED.json"
"""written into a run folder whose notebook stopped with an error (which notebook file, when, the error); removed
when a later attempt at the same folder (`--run-dir`) finishes"""


def executed_notebook_path(run_dir: Path, notebook: str) -> Path:
    """Where the executed notebook of this attempt at `run_dir` goes: ``<notebook>.ipynb`` for the first attempt,
    ``<notebook>.attempt<k>.ipynb`` for the k-th, so resuming a run never replaces an earlier attempt's record."""
    out = run_dir / f"{notebook}.ipynb"
    k = 2
    while out.exists():
        out = run_dir / f"{notebook}.attempt{k}.ipynb"
        k += 1
    return out
