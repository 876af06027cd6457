"""The adapter registry (`ADAPTERS`: name -> what it gives and how it reads rows) and `load_adapted`, which reads a
`params.DatasetSpec` through its adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..data import DataError
from .loading import load_rows
from .pairs import generic_pairs, hh_rlhf_pairs, openmathinstruct_pairs
from .problems import asdiv_problems, gsm8k_problems, gsm_hard_problems, math_problems, qa_problems, svamp_problems
from .records import generic_records, gsm8k_model_solutions, helpsteer_records, openmathinstruct_records
from .rows import Adapted
from .stepwise import processbench_records, trl_stepwise_records


@dataclass(frozen=True)
class Adapter:
    kind: str  # "pairs" | "records" | "problems"
    read: Callable


ADAPTERS: dict[str, Adapter] = {
    "openmathinstruct": Adapter("pairs", openmathinstruct_pairs),
    "hh_rlhf": Adapter("pairs", hh_rlhf_pairs),
    "pairs": Adapter("pairs", generic_pairs),
    "records": Adapter("records", generic_records),
    "openmathinstruct_records": Adapter("records", openmathinstruct_records),
    "gsm8k_model_solutions": Adapter("records", gsm8k_model_solutions),
    "helpsteer": Adapter("records", helpsteer_records),
    "processbench": Adapter("records", processbench_records),
    "trl_stepwise": Adapter("records", trl_stepwise_records),
    "gsm8k": Adapter("problems", gsm8k_problems),
    "math": Adapter("problems", math_problems),
    "gsm_hard": Adapter("problems", gsm_hard_problems),
    "svamp": Adapter("problems", svamp_problems),
    "asdiv": Adapter("problems", asdiv_problems),
    "qa": Adapter("problems", qa_problems),
}


def load_adapted(spec, kind: str | None = None) -> Adapted:
    """Read `spec` through its adapter. `kind` ("pairs", "records", "problems"), when given, must be the adapter's.
    Returns a list (an `Adapted`) whose `stats` holds the adapter's counts: `skipped_rows` and `skipped` ({reason:
    n}) for every adapter, and e.g. `pair_records`' counts for openmathinstruct. Raises DataError naming the file,
    row and key for a row the adapter cannot read, and when no record is left."""
    if spec.adapter not in ADAPTERS:
        raise DataError(f"unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}")
    a = ADAPTERS[spec.adapter]
    if kind is not None and a.kind != kind and not (kind == "records" and a.kind == "problems"):
        raise DataError(f"adapter {spec.adapter!r} gives {a.kind}, but {kind} are needed here")
    out = a.read(load_rows(spec), spec)
    if not out:
        left = getattr(out, "stats", {}).get("skipped")
        raise DataError(f"{spec.source}: adapter {spec.adapter!r} found no records"
                        + (f"; left out by reason: {left}" if left else ""))
    return out if isinstance(out, Adapted) else Adapted(out)
