"""Where models run: the one device rule of the kit, used by every notebook's `device` param."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")
"""values of a notebook's `device` param (`cuda:<i>` names one GPU)"""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: the first GPU when torch sees one, else the CPU; `cpu`, `cuda` or `cuda:<i>` as given. Asking for a
    GPU that is not there raises a ValueError saying so."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or name.startswith("cuda:")):
        raise ValueError(f"device {name!r}: expected one of {DEVICES} or cuda:<index>")
    if name != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no GPU is visible to torch here; use auto or cpu")
    return torch.device(name)
