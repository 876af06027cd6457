"""Where models run: the one device rule of the kit, used by every notebook's `device` param."""

from __future__ import annotations

import re

import torch

DEVICES = ("auto", "cpu", "cuda")
"""values of a notebook's `device` param (`cuda:<i>` names one GPU)"""


def is_device_name(name: str) -> bool:
    """Whether `name` is a value the `device` param accepts: one of DEVICES or cuda:<index>."""
    return name in DEVICES or re.fullmatch(r"cuda:\d+", name) is not None


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: the first GPU when torch sees one, else the CPU; `cpu`, `cuda` or `cuda:<i>` as given. Asking for a
    GPU that is not there raises a ValueError saying so."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not is_device_name(name):
        raise ValueError(f"device {name!r}: expected one of {', '.join(DEVICES)} or cuda:<index>")
    if name != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no GPU is visible to torch here; use auto or cpu")
    return torch.device(name)
