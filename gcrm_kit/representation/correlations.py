"""Do early values agree with the final reward? Pearson and Spearman correlations, over solutions, between a
scorer's value after reading a share of the response and the reward at the EOS (the paper's Table 13)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .. import evaluation
from ..io import to_jsonable
from ..qvalues import TokenValues
from . import figures
from .analysis import Analysis


def reward_correlations(values: dict[str, list[TokenValues]], fractions: list[float], scorers: list[str]
                        ) -> Analysis:
    """Correlation, over solutions, between a scorer's value after reading each fraction of the response and the
    final reward (the head at the EOS): Pearson r and Spearman rho per seed, then mean and std over seeds."""
    data: dict = {"fractions": list(fractions), "correlations": {}}
    for rm, tvs in values.items():
        data["correlations"][rm] = {}
        for scorer in scorers:
            entry = {}
            for kind, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
                per = np.array([[_corr(fn, tv.at_fraction(scorer, f), tv.rewards) for f in fractions]
                                for tv in tvs])
                entry[kind] = {"mean": evaluation.nanmean0(per).tolist(),
                               "seed_std": evaluation.nanstd0(per).tolist(), "per_seed": per.tolist()}
            data["correlations"][rm][scorer] = entry
    data = to_jsonable(data)
    return Analysis("reward_correlations", data, figures.reward_correlations(data, scorers))


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")  # undefined for a constant input
    return float(fn(x, y)[0])
