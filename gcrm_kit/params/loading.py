"""Params files and notebooks to params objects: the notebook -> params class registry, YAML files, a
notebook's parameters cell."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .core import ParamsError, from_dict, read_yaml, to_dict
from .filtering import FilteringParams
from .representation import RepresentationParams
from .rm_training import RMTrainingParams
from .steering import SteeringParams

NOTEBOOK_PARAMS: dict[str, type] = {RMTrainingParams.notebook: RMTrainingParams,
                                    RepresentationParams.notebook: RepresentationParams,
                                    FilteringParams.notebook: FilteringParams,
                                    SteeringParams.notebook: SteeringParams}


def load_params(notebook: str, path: str | Path) -> Any:
    """Read `params/<notebook>/<name>.yaml` (or any YAML path) into the notebook's params class.

    The file's stem becomes `params_name`. Errors name the file and the key.
    """
    cls = NOTEBOOK_PARAMS.get(notebook)
    if cls is None:
        raise ParamsError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}")
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    if "params_name" in raw and raw["params_name"] != path.stem:
        raise ParamsError(f"{path}: params_name {raw['params_name']!r} differs from the file name {path.stem!r}")
    raw = {**raw, "params_name": path.stem}
    try:
        return from_dict(cls, raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None


def from_notebook(cls: type, namespace: dict) -> Any:
    """Collect `cls`'s fields from a notebook's globals (its parameters cell, as papermill left it)."""
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in namespace]
    if missing:
        raise ParamsError(f"parameters cell lacks {missing}")
    return from_dict(cls, {f.name: namespace[f.name] for f in dataclasses.fields(cls)})


def parameters_cell_defaults(cls: type) -> dict[str, Any]:
    """The parameters cell's variables and values for `cls`: every field at its default, as plain values."""
    return to_dict(cls())
