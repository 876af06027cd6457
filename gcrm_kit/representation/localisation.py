"""Does a value curve drop where the solution first goes wrong? The largest drop of each curve against the first
wrong step the verifier marked, its chance level, and a control on correct solutions at matched positions."""

from __future__ import annotations

import numpy as np

from .. import evaluation
from ..io import to_jsonable
from ..qvalues import TokenValues
from . import figures
from .analysis import Analysis


def largest_drops(tv: TokenValues, scorer: str) -> np.ndarray:
    """(N,) the column t in 1..L where reading token t lowered the value most (v[t-1] - v[t] largest)."""
    v = tv.values(scorer).astype(float)
    drops = v[:, :-1] - v[:, 1:]  # NaN past each row's end
    drops = np.where(np.isnan(drops), -np.inf, drops)
    return drops.argmax(1) + 1


def localisation_score(tv: TokenValues, scorer: str, error_columns: np.ndarray, rows: np.ndarray,
                       window: tuple[int, int]) -> dict:
    """Share of `rows` whose largest drop lies in [e + window[0], e + window[1]] (e: the first wrong step's
    column), and the chance share: what a drop placed uniformly at random over the row's L columns would get,
    |window within 1..L| / L, averaged over rows. Also the median offset of the drop from e."""
    lo, hi = window
    if len(rows) == 0:
        return {"hit_rate": float("nan"), "chance": float("nan"), "n": 0, "median_offset": float("nan")}
    drop = largest_drops(tv, scorer)[rows]
    e = error_columns[rows]
    L = tv.lengths[rows]
    hit = (drop >= e + lo) & (drop <= e + hi)
    covered = np.clip(np.minimum(e + hi, L) - np.maximum(e + lo, 1) + 1, 0, None)
    return {"hit_rate": float(hit.mean()), "chance": float((covered / L).mean()), "n": int(len(rows)),
            "median_offset": float(np.median(drop - e))}


def aligned_curve(tv: TokenValues, scorer: str, columns: np.ndarray, rows: np.ndarray, offsets: np.ndarray
                  ) -> np.ndarray:
    """Mean over `rows` of v[c + d] - v[c - 1] for each offset d: the value around column c relative to just
    before it (NaN where no row reaches)."""
    v = tv.values(scorer).astype(float)
    out = np.full(len(offsets), np.nan)
    if len(rows) == 0:
        return out
    c = columns[rows]
    base = v[rows, c - 1]
    for k, d in enumerate(offsets):
        col = c + d
        ok = (col >= 0) & (col <= tv.lengths[rows])
        if ok.any():
            out[k] = np.mean(v[rows[ok], col[ok]] - base[ok])
    return out


def matched_columns(tv: TokenValues, error_columns: np.ndarray, rows_bad: np.ndarray, rows_ctrl: np.ndarray,
                    seed: int = 0) -> np.ndarray:
    """Pseudo first-error columns for control solutions (`rows_ctrl`), matched to the real ones of `rows_bad`.

    Real first errors start at particular places (in the toy world, right after a step separator or at the start
    of the response). Each control solution gets one column whose preceding token is one that precedes a real first
    error (or the response start, when one does), picked nearest to a relative position drawn from the real errors'
    relative positions. Returns (N,) columns, -1 outside `rows_ctrl`."""
    rng = np.random.default_rng([seed, 24])
    out = np.full(len(tv), -1)
    if len(rows_ctrl) == 0:
        return out

    def before(i: int, c: int) -> str:
        return "\x00start" if c < 2 else tv.tokens[i][c - 2]

    if len(rows_bad):
        kinds = {before(i, int(error_columns[i])) for i in rows_bad}
        rel = error_columns[rows_bad] / tv.lengths[rows_bad]
    else:
        kinds, rel = set(), np.array([0.5])
    for i in rows_ctrl:
        L = int(tv.lengths[i])
        cols = np.arange(1, max(L, 2))  # any response token but the EOS
        ok = np.array([before(i, int(c)) in kinds for c in cols])
        cand = cols[ok] if ok.any() else cols
        target = rng.choice(rel) * L
        dist = np.abs(cand - target)
        out[i] = int(rng.choice(cand[dist == dist.min()]))
    return out


def error_localisation(values: dict[str, list[TokenValues]], labels: np.ndarray, error_columns: np.ndarray,
                       scorers: list[str], window: tuple[int, int] = (0, 5), seed: int = 0,
                       offsets: tuple[int, int] = (-8, 14)) -> Analysis:
    """Does a curve drop where the solution first goes wrong?

    Over incorrect solutions with a located first wrong step, per reward model and scorer (mean and std over
    seeds): the localisation score, how often the largest drop falls within `window` tokens of the step's first
    token; its chance level (a drop placed uniformly at random); and a control: the same score on correct solutions
    without any wrong step, at matched pseudo-error columns (`matched_columns`), i.e. how often a curve drops there
    anyway. Also the mean curve aligned at the first error beside the controls aligned at their pseudo-errors."""
    labels = np.asarray(labels, dtype=bool)
    rows_bad = np.flatnonzero(~labels & (error_columns >= 1))
    rows_ctrl = np.flatnonzero(labels & (error_columns < 0))
    pseudo = matched_columns(next(iter(values.values()))[0], error_columns, rows_bad, rows_ctrl, seed)
    d = np.arange(offsets[0], offsets[1] + 1)
    data: dict = {"window": list(window), "n_incorrect_located": int(len(rows_bad)),
                  "n_control": int(len(rows_ctrl)), "offsets": d.tolist(), "scores": {}, "aligned": {}}
    for rm, tvs in values.items():
        data["scores"][rm], data["aligned"][rm] = {}, {}
        for scorer in scorers:
            per = [localisation_score(tv, scorer, error_columns, rows_bad, window) for tv in tvs]
            ctrl = [localisation_score(tv, scorer, pseudo, rows_ctrl, window) for tv in tvs]
            hm, hs, _ = evaluation.mean_std([x["hit_rate"] for x in per])
            cm, _, _ = evaluation.mean_std([x["chance"] for x in per])
            km, ks, _ = evaluation.mean_std([x["hit_rate"] for x in ctrl])
            data["scores"][rm][scorer] = {
                "hit_rate": hm, "hit_rate_std": hs, "chance": cm,
                "lift": hm / cm if cm and cm == cm else float("nan"),
                "control_hit_rate": km, "control_hit_rate_std": ks,
                "per_seed": [x["hit_rate"] for x in per],
                "median_offset": float(np.median([x["median_offset"] for x in per])), "n": per[0]["n"]}
            bad = evaluation.nanmean0([aligned_curve(tv, scorer, error_columns, rows_bad, d) for tv in tvs])
            good = evaluation.nanmean0([aligned_curve(tv, scorer, pseudo, rows_ctrl, d) for tv in tvs])
            data["aligned"][rm][scorer] = {"incorrect": bad.tolist(), "correct": good.tolist()}
    data = to_jsonable(data)
    return Analysis("error_localisation", data, figures.error_localisation(data, scorers))
