"""The strict conversion every params class goes through: mappings (YAML, a notebook's parameters cell) to
dataclasses and back. Unknown keys and wrong types raise `ParamsError` naming the dotted key."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal

import yaml

from ..device import DEVICES, is_device_name


class ParamsError(ValueError):
    """Invalid params; the message names the source file (if any) and the dotted key."""


def _check(tp: Any, value: Any, key: str) -> Any:
    """Convert `value` to type `tp` or raise ParamsError naming `key`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            try:
                return _check(a, value, key)
            except ParamsError:
                continue
        raise ParamsError(f"{key}: {value!r} is none of {args}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return [_check(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ParamsError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_check(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        return {_check(args[0], k, f"{key}.{k}"): _check(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str) and _is_number(value):
            raise ParamsError(f"{key}: expected a number, got the text {value!r} (quoted, or read by a YAML 1.1 "
                              "parser, which takes an exponent without a dot such as 3e-4 for text); write it "
                              f"unquoted, e.g. {float(value)!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{key}: unsupported type {tp}")


def check_device(value: str, key: str = "device") -> None:
    """The one check of every notebook's `device` param (gcrm_kit.device): a ParamsError naming `key` otherwise."""
    if not is_device_name(value):
        raise ParamsError(f"{key}: expected one of {', '.join(DEVICES)} or cuda:<index>, got {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial) mapping; missing keys keep their defaults.

    Raises ParamsError for an unknown key (naming it and the known ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ParamsError(f"unknown key(s) {[f'{prefix}.{k}' if prefix else k for k in unknown]}{where}; "
                          f"known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            # a partial section overrides only the keys it names
            default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING \
                else known[name].default
            value = {**to_dict(default), **value}
        kwargs[name] = _check(tp, value, key)
    obj = cls(**kwargs)
    if hasattr(obj, "validate") and not prefix:
        obj.validate()
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict of YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does: `3e-4` and `1E5` are floats (YAML 1.1, PyYAML's
    default, needs a dot in the mantissa and reads them as text)."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_yaml(text: str) -> Any:
    """Parse params YAML with `ParamsLoader`."""
    return yaml.load(text, Loader=ParamsLoader)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
