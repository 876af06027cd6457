"""Comparing the metrics of two runs of the same notebook (`gcrm compare`): is a change of code behaviour-neutral,
does a seed reproduce? Walks two `metrics.json` files side by side and reports every value that differs, every
key only one of them has, and the values it was told to leave out (wall-clock times, folders).
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORED = ("*seconds*", "*_time*", "*wall*", "*run_dir*", "*_dir", "*_dirs", "rm_run", "*path*", "*timing*", "*speed*")
"""key patterns left out by default: wall-clock measurements and folders, which differ between any two runs"""


@dataclass
class Comparison:
    """What differs between two metrics mappings, each entry a dotted key (list indices in brackets)."""

    equal: int = 0
    """leaf values equal in both"""
    different: list[str] = field(default_factory=list)
    """``key: a vs b`` for values that differ"""
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """No value differs and no key is missing from either side (keys only in b are additions)."""
        return not self.different and not self.only_a

    def report(self, name_a: str = "a", name_b: str = "b") -> str:
        lines = [f"{self.equal} values equal, {len(self.different)} different, {len(self.only_a)} only in "
                 f"{name_a}, {len(self.only_b)} only in {name_b}, {len(self.ignored)} left out"]
        for title, items in (("different", self.different), (f"only in {name_a}", self.only_a),
                             (f"only in {name_b}", self.only_b)):
            lines += [f"  {title}: {x}" for x in items]
        return "\n".join(lines)


def compare_values(a: Any, b: Any, key: str = "", ignore: tuple[str, ...] = IGNORED,
                   out: Comparison | None = None) -> Comparison:
    """Walk `a` and `b` (JSON values) together. Floats must be equal exactly (NaN equals NaN); a key one of whose
    dotted parts (list indices aside) matches a pattern in `ignore` (fnmatch) is left out with all it holds."""
    out = out if out is not None else Comparison()
    last = key.rsplit(".", 1)[-1].split("[", 1)[0]
    if key and any(fnmatch.fnmatch(last, pat) for pat in ignore):
        out.ignored.append(key)
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            sub = f"{key}.{k}" if key else str(k)
            if k not in b:
                out.only_a.append(sub)
            elif k not in a:
                out.only_b.append(sub)
            else:
                compare_values(a[k], b[k], sub, ignore, out)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            compare_values(x, y, f"{key}[{i}]", ignore, out)
        return out
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    if a == b or both_nan:
        out.equal += 1
    else:
        out.different.append(f"{key}: {_short(a)} vs {_short(b)}")
    return out


def _short(v: Any, width: int = 80) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def compare_runs(run_a: str | Path, run_b: str | Path, ignore: tuple[str, ...] = IGNORED) -> Comparison:
    """Compare the metrics.json of two run folders (or two metrics.json files)."""
    files = []
    for run in (Path(run_a), Path(run_b)):
        f = run / "metrics.json" if run.is_dir() else run
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no metrics.json (is {run} a finished run folder?)")
        files.append(json.loads(f.read_text(encoding="utf-8")))
    return compare_values(files[0], files[1], ignore=ignore)
