"""Single solutions, token by token: which ones to show, their value curves (one line per reward model) and the
solution's text with each token shaded by its value."""

from __future__ import annotations

import numpy as np

from ..data import GenerationRecord
from ..io import to_jsonable
from ..qvalues import TokenValues
from . import figures
from .analysis import HEAD, Analysis


def choose_examples(labels: np.ndarray, error_columns: np.ndarray, n: int, seed: int) -> list[int]:
    """Indices of `n` solutions to show: half incorrect with a located first error, the rest correct."""
    rng = np.random.default_rng([seed, 23])
    bad = np.flatnonzero(~labels & (error_columns >= 0))
    good = np.flatnonzero(labels)
    n_bad = min(len(bad), (n + 1) // 2)
    n_good = min(len(good), n - n_bad)
    return [int(i) for i in rng.permutation(bad)[:n_bad]] + [int(i) for i in rng.permutation(good)[:n_good]]


def example_curves(values: dict[str, list[TokenValues]], records: list[GenerationRecord], labels: np.ndarray,
                   error_columns: np.ndarray, index: list[int], scorer: str) -> Analysis:
    """Per-token curves of `scorer` for the solutions in `index`, one line per reward model (its first seed),
    with the first wrong step's first token marked."""
    examples = []
    for i in index:
        tv0 = next(iter(values.values()))[0]
        examples.append({
            "index": int(i), "prompt": records[i].prompt, "response": records[i].response,
            "is_correct": bool(labels[i]), "error_column": int(error_columns[i]),
            "tokens": ["⟨prompt⟩"] + list(tv0.tokens[i]),
            "values": {rm: tvs[0].row(scorer, i).tolist() for rm, tvs in values.items()}})
    data = {"scorer": scorer, "examples": examples}
    return Analysis("example_curves", to_jsonable(data), figures.example_curves(data))


def token_view(values: dict[str, list[TokenValues]], records: list[GenerationRecord], labels: np.ndarray,
               error_columns: np.ndarray, index: int, scorers: list[str]) -> figures.TokenShading:
    """One solution with each response token shaded by its value: one row per reward model (first seed) and
    scorer. Each row's colour scale spans the 5th-95th percentile of that model's values over all analysed
    tokens, so shades compare within a row across solutions. Displays inline in JupyterLab."""
    rows = []
    for rm, tvs in values.items():
        tv = tvs[0]
        for scorer in scorers:
            v = tv.values(scorer)
            allv = v[:, 1:][~np.isnan(v[:, 1:])]
            lo, hi = np.percentile(allv, [5, 95]) if len(allv) else (0.0, 1.0)
            rows.append({"label": f"{rm} · {'reward head' if scorer == HEAD else 'Q (' + scorer + ')'}",
                         "values": tv.row(scorer, index)[1:].tolist(), "vmin": float(lo), "vmax": float(hi)})
    tv0 = next(iter(values.values()))[0]
    r = records[index]
    title = (f"{r.prompt} · {'correct' if labels[index] else 'incorrect'}"
             + (f" · first wrong step at token {error_columns[index] - 1}" if error_columns[index] >= 1 else ""))
    err_token = int(error_columns[index]) - 1 if error_columns[index] >= 1 else None
    return figures.token_shading(list(tv0.tokens[index]), rows, title=title, mark=err_token)
