"""Values along solutions, over all analysed solutions: the partial-sequence AUROC (each solution scored after
reading 0%, 10%, ..., 100% of it, the paper's central figure) and the mean value curves of correct and incorrect
solutions."""

from __future__ import annotations

import numpy as np

from .. import evaluation
from ..io import to_jsonable
from ..qvalues import TokenValues
from . import figures
from .analysis import Analysis


def scores_at(values: list[TokenValues], scorer: str, fractions: list[float]) -> np.ndarray:
    """(S, F, N): the value of `scorer` after reading each fraction of each solution, for each seed."""
    return np.stack([np.stack([tv.at_fraction(scorer, f) for f in fractions]) for tv in values])


def partial_auroc(values: dict[str, list[TokenValues]], labels: np.ndarray, fractions: list[float],
                  scorers: list[str], n_bootstrap: int = 1000, seed: int = 0, show: list[str] | None = None
                  ) -> Analysis:
    """Partial-sequence AUROC for final correctness.

    For each reward model and scorer (a prototype's Q-value, or "head" for the reward head), each solution is
    scored after reading each fraction of its response (0 = the prompt's last token, 1 = the EOS, where the
    reward is read); AUROC per seed (scikit-learn), their mean and sample std over seeds, and a 95% bootstrap
    interval of the seed mean over the solutions. `show` picks the scorers drawn (default: all)."""
    labels = np.asarray(labels, dtype=bool)
    curves: dict = {}
    for rm, tvs in values.items():
        curves[rm] = {}
        for scorer in scorers:
            sc = scores_at(tvs, scorer, fractions)
            per_seed = [[evaluation.auroc(sc[s, f].tolist(), labels.tolist()) for f in range(len(fractions))]
                        for s in range(len(tvs))]
            arr = np.array(per_seed, dtype=float)
            boot = evaluation.bootstrap_auroc(sc, labels, n_bootstrap, seed)
            with np.errstate(invalid="ignore"):
                lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0) if np.isfinite(boot).any() else (
                    np.full(len(fractions), np.nan), np.full(len(fractions), np.nan))
            curves[rm][scorer] = {
                "per_seed": arr.tolist(), "mean": evaluation.nanmean0(arr).tolist(),
                "seed_std": evaluation.nanstd0(arr).tolist(),
                "ci_low": np.asarray(lo).tolist(), "ci_high": np.asarray(hi).tolist()}
    data = {"fractions": list(fractions), "n": int(len(labels)), "n_correct": int(labels.sum()),
            "n_bootstrap": n_bootstrap, "curves": curves}
    return Analysis("partial_auroc", to_jsonable(data), figures.partial_auroc(data, show or scorers))


def at_fraction(data: dict, rm: str, scorer: str, fraction: float) -> dict:
    """One point of a `partial_auroc` result: {mean, seed_std, ci_low, ci_high, per_seed} at `fraction`."""
    fr = np.asarray(data["fractions"])
    k = int(np.argmin(np.abs(fr - fraction)))
    if abs(fr[k] - fraction) > 1e-9:
        raise KeyError(f"fraction {fraction} was not computed; have {data['fractions']}")
    c = data["curves"][rm][scorer]
    return {**{key: c[key][k] for key in ("mean", "seed_std", "ci_low", "ci_high")},
            "per_seed": [row[k] for row in c["per_seed"]]}


def mean_curves(values: dict[str, list[TokenValues]], labels: np.ndarray, scorer: str,
                fractions: list[float] | None = None) -> Analysis:
    """Mean value of `scorer` along solutions, by share of the response read, correct vs incorrect, per reward
    model (mean over samples, then over seeds; the band is the std over seeds)."""
    fractions = fractions if fractions is not None else [k / 20 for k in range(21)]
    labels = np.asarray(labels, dtype=bool)
    data: dict = {"fractions": fractions, "scorer": scorer, "curves": {}}
    for rm, tvs in values.items():
        sc = scores_at(tvs, scorer, fractions)  # (S, F, N)
        data["curves"][rm] = {}
        for name, mask in (("correct", labels), ("incorrect", ~labels)):
            m = sc[:, :, mask].mean(-1) if mask.any() else np.full(sc.shape[:2], np.nan)
            std = m.std(0, ddof=1) if len(tvs) > 1 else np.zeros_like(m[0])
            data["curves"][rm][name] = {"mean": m.mean(0).tolist(), "seed_std": std.tolist()}
    return Analysis("mean_curves", to_jsonable(data), figures.mean_curves(data))
