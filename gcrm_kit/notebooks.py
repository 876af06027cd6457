"""Executing a notebook headless: the one path by which every notebook runs outside JupyterLab (`gcrm run`, and a
later notebook that needs a notebook-01 run it cannot find). Papermill runs the notebook's own cells, so the
headless run and the interactive one are the same ordered steps."""

from __future__ import annotations

from pathlib import Path

from .io import project_root
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
    import papermill as pm

    p = load_params(notebook, params_path(notebook, params_name))
    for key, value in (overrides or {}).items():
        setattr(p, key, value)
    if run_dir:
        p.run_dir = str(Path(run_dir).resolve())
    # the run folder exists (with params.resolved.yaml) before papermill writes the executed notebook into it;
    # the notebook's own start_run then finds and reuses it
    p.run_dir = str(start_run(p).dir)
    nb = project_root() / "notebooks" / f"{notebook}.ipynb"
    out = Path(p.run_dir) / f"{notebook}.ipynb"
    print(f"[gcrm] {notebook} with {params_path(notebook, params_name)} -> {p.run_dir}", flush=True)
    pm.execute_notebook(str(nb), str(out), parameters=to_dict(p), kernel_name="python3",
                        cwd=str(nb.parent), log_output=log_output, progress_bar=False)
    print(f"[gcrm] done: {p.run_dir}", flush=True)
    return Path(p.run_dir)
