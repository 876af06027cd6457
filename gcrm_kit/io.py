"""Atomic file writes and JSON conversion, and where the project and its outputs are: a killed process leaves either the old file or the new one, never half
of one. The lowest layer of the kit (imports nothing of it)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_jsonable(obj: Any) -> Any:
    """`obj` with NumPy scalars/arrays and paths turned into plain JSON values."""
    return json.loads(json.dumps(obj, default=_json_default))


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding both `notebooks/` and `params/`; cwd if none.

    Papermill runs a notebook from its own folder, the README's commands from the top: both find the same root.
    """
    here = Path(start or os.getcwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "notebooks").is_dir() and (p / "params").is_dir():
            return p
    return here


def resolve_output_root(output_root: str) -> Path:
    p = Path(output_root).expanduser()
    return p if p.is_absolute() else project_root() / p


def normal_permissions(folder: str | Path) -> None:
    """Give every file under `folder` the permissions `open()` would have (0666 less the umask). transformers'
    Trainer and `save_pretrained` write weights and optimizer state through private temporary files (mode 0600),
    which would leave a run folder's models unreadable to the other users of a shared machine."""
    for f in Path(folder).rglob("*"):
        if f.is_file() and not f.is_symlink():
            os.chmod(f, 0o666 & ~_UMASK)
