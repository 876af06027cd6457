"""Offline filtering, as the paper computed it: every method on the same finished samples, for every rm seed. Each
pruning method's threshold grid is swept on both sets, the threshold is chosen on validation questions (the most
tokens saved at validation accuracy no more than `max_accuracy_drop` below the unfiltered vote) and reported with
its statistics on test questions; random pruning spends the chosen budget of `RANDOM_MATCHED_TO`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import evaluation
from ..params import FilteringParams
from .methods import PRUNING, RANDOM_MATCHED_TO, REWARD_MODELS, SETS, pruning_methods
from .pruning import (choose_threshold, evaluate_pruning, min_after, prune_positions, pruning_statistics,
                      random_matched, threshold_grid)
from .samples import SampleSet
from .scoring import SampleScores
from .voting import best_of_n_credit, weighted_credit


@dataclass
class OfflineResult:
    """rows: one per (method, rm seed) on the test set at the validation-chosen threshold (pruning methods), or
    the method's single operating point; paper_rows: Q-value methods at the paper's threshold; frontier: every
    (method, rm seed, set, grid point); chosen: (method, seed index) -> chosen threshold and test prune indices."""

    rows: list[dict]
    paper_rows: list[dict]
    frontier: list[dict]
    signals: list[dict] = field(default_factory=list)
    """per pruning method and rm seed: `signal_auroc` on the test samples"""
    chosen: dict = field(default_factory=dict)
    credits: dict = field(default_factory=dict)
    """(method, seed index) -> per-question test credit, and ('majority', -1) -> unfiltered credit"""


def signal_auroc(ss: SampleSet, sc: SampleScores, signal: str, skip: int) -> dict:
    """How well a per-token signal tells correct from incorrect test samples: AUROC (pooled over questions, and
    within questions) of the statistic the rule thresholds, its minimum after `skip` tokens, and of its value at
    the last token (the EOS of a finished sample). Where the minimum sits, as a fraction of the response, says what
    the rule reacts to."""
    x = sc.signal(signal)
    mins = min_after(x, skip)
    last = x[np.arange(len(ss.length)), ss.length - 1]
    where = np.argmin(np.where(np.arange(x.shape[1])[None, :] >= skip, np.nan_to_num(x, nan=np.inf), np.inf), 1)
    ok = np.isfinite(mins)
    fin = np.isfinite(last)  # a step signal holds nothing at the last token of a sample its generation cut
    return {"min_auroc": evaluation.auroc(mins[ok].tolist(), ss.correct[ok].tolist()),
            "min_auroc_within_question": evaluation.within_group_auroc(mins, ss.correct, ss.question),
            "last_auroc": evaluation.auroc(last[fin].tolist(), ss.correct[fin].tolist()),
            "last_auroc_within_question": evaluation.within_group_auroc(last[fin], ss.correct[fin],
                                                                        ss.question[fin]),
            "argmin_position": float(np.mean((where / ss.length)[ok]))}


def evaluate_offline(p: FilteringParams, samples: dict[str, SampleSet],
                     scores: dict[tuple[str, int], dict[str, SampleScores]], rm_seeds: list[int]) -> OfflineResult:
    """Every method on the same samples, for every rm seed: threshold sweep on both sets, choice on validation,
    statistics on test. scores: {(which reward model, seed index): {set: SampleScores}} from `score_all`."""
    all_kept = {s: np.full(len(ss.records), -1) for s, ss in samples.items()}
    unf = {s: evaluate_pruning(ss, all_kept[s], p.tie_break, p.all_pruned) for s, ss in samples.items()}
    res = OfflineResult([], [], [])
    res.credits[("majority", -1)] = unf["test"]["credit"]
    for si, seed in enumerate(rm_seeds):
        base = {"rm_seed": seed, "accuracy_unfiltered": unf["test"]["accuracy"]}
        res.rows.append({"method": "majority", **base, "threshold": None, "accuracy": unf["test"]["accuracy"],
                         "share_pruned": 0.0, "share_tokens_saved": 0.0,
                         "tokens_generated": unf["test"]["tokens_total"], "tokens_total": unf["test"]["tokens_total"]})
        _reward_baselines(p, samples["test"], scores, si, base, unf["test"], res)
        for method in pruning_methods(scores, si):
            _pruning_method(p, samples, scores, method, si, seed, base, unf, res)
        _random_pruning(p, samples["test"], scores, si, seed, base, unf["test"], res)
    return res


def _reward_baselines(p: FilteringParams, test: SampleSet, scores: dict, si: int, base: dict, unf: dict,
                      res: OfflineResult) -> None:
    """Best-of-N and reward-weighted voting of both reward models of seed index `si` (rows and credits)."""
    for which in REWARD_MODELS:
        r = scores[(which, si)]["test"].reward
        for name, credit in ((f"best_of_n_{which}", best_of_n_credit(test, r)),
                             (f"weighted_{which}", weighted_credit(test, r, p.tie_break))):
            res.credits[(name, si)] = credit
            res.rows.append({"method": name, **base, "threshold": None, "accuracy": float(credit.mean()),
                             "share_pruned": 0.0, "share_tokens_saved": 0.0,
                             "tokens_generated": unf["tokens_total"], "tokens_total": unf["tokens_total"],
                             "paired_vote_ttest": evaluation.paired_ttest(credit, unf["credit"])})


def _pruning_method(p: FilteringParams, samples: dict[str, SampleSet], scores: dict, method: str, si: int, seed: int,
                    base: dict, unf: dict, res: OfflineResult) -> None:
    """One pruning method of seed index `si`: its signal's AUROC, the sweep of its threshold grid on both sets (the
    frontier), the threshold chosen on validation and its test row, and for Q-values the paper's threshold."""
    test, tb, ap, k = samples["test"], p.tie_break, p.all_pruned, p.skip_tokens
    which, signal = pruning_methods(scores, si)[method]
    res.signals.append({"method": method, "rm_seed": seed,
                        **signal_auroc(test, scores[(which, si)]["test"], signal, k)})
    sc = {s: scores[(which, si)][s].signal(signal) for s in SETS}
    taus = threshold_grid(sc["validation"], k, p.threshold_quantiles)
    sweeps = {}
    for s, ss in samples.items():
        sweeps[s] = []
        for qu, tau in zip(p.threshold_quantiles, taus):
            ev = evaluate_pruning(ss, prune_positions(sc[s], tau, k), tb, ap)
            sweeps[s].append(ev)
            res.frontier.append({"method": method, "rm_seed": seed, "set": s, "quantile": float(qu),
                                 "threshold": float(tau), **_public(ev)})
    i = choose_threshold(sweeps["validation"], unf["validation"]["accuracy"], p.max_accuracy_drop)
    tau = float(taus[i])
    prune = prune_positions(sc["test"], tau, k)
    ev = evaluate_pruning(test, prune, tb, ap)
    res.chosen[(method, si)] = {"threshold": tau, "quantile": float(p.threshold_quantiles[i]), "prune_at": prune,
                                "validation_accuracy": sweeps["validation"][i]["accuracy"],
                                "validation_share_tokens_saved": sweeps["validation"][i]["share_tokens_saved"]}
    res.credits[(method, si)] = ev["credit"]
    res.rows.append({"method": method, **base, "threshold": tau, "quantile": float(p.threshold_quantiles[i]),
                     "validation_accuracy": sweeps["validation"][i]["accuracy"],
                     "validation_accuracy_unfiltered": unf["validation"]["accuracy"], **_public(ev),
                     **pruning_statistics(test, prune),
                     "paired_vote_ttest": evaluation.paired_ttest(ev["credit"], unf["test"]["credit"])})
    if signal == "q":
        pp = prune_positions(sc["test"], p.paper_threshold, k)
        pe = evaluate_pruning(test, pp, tb, ap)
        res.paper_rows.append({"method": method, "rm_seed": seed, "threshold": p.paper_threshold,
                               "accuracy_unfiltered": unf["test"]["accuracy"], **_public(pe),
                               **pruning_statistics(test, pp),
                               "paired_vote_ttest": evaluation.paired_ttest(pe["credit"], unf["test"]["credit"])})


def _random_pruning(p: FilteringParams, test: SampleSet, scores: dict, si: int, seed: int, base: dict, unf: dict,
                    res: OfflineResult) -> None:
    """Random pruning of seed index `si` at the budget of the reference method: its chosen point (row, credit,
    the first draw as the decisions online pruning replays), then along its whole validation frontier."""
    ref, tb, ap, k = RANDOM_MATCHED_TO, p.tie_break, p.all_pruned, p.skip_tokens
    rng = np.random.default_rng([p.seed, 5, si])
    draws = [random_matched(test, res.chosen[(ref, si)]["prune_at"], k, rng) for _ in range(p.random_repeats)]
    evs = [evaluate_pruning(test, d, tb, ap) for d in draws]
    credit = np.mean([e["credit"] for e in evs], axis=0)
    res.credits[("random", si)] = credit
    res.chosen[("random", si)] = {"threshold": None, "prune_at": draws[0], "matched_to": ref}
    res.rows.append({"method": "random", **base, "threshold": None, "matched_to": ref,
                     "accuracy": float(credit.mean()),
                     "accuracy_std_over_draws": float(np.std([e["accuracy"] for e in evs])),
                     "share_pruned": float(np.mean([e["share_pruned"] for e in evs])),
                     "share_tokens_saved": float(np.mean([e["share_tokens_saved"] for e in evs])),
                     "tokens_generated": float(np.mean([e["tokens_generated"] for e in evs])),
                     "tokens_total": evs[0]["tokens_total"],
                     **pruning_statistics(test, draws[0]),
                     "paired_vote_ttest": evaluation.paired_ttest(credit, unf["credit"])})
    ref_sc = scores[(PRUNING[ref][0], si)]["test"].signal(PRUNING[ref][1])
    ref_taus = [f["threshold"] for f in res.frontier
                if f["method"] == ref and f["rm_seed"] == seed and f["set"] == "validation"]
    for qu, tau in zip(p.threshold_quantiles, ref_taus):
        rp = prune_positions(ref_sc, tau, k)
        evs = [evaluate_pruning(test, random_matched(test, rp, k, rng), tb, ap) for _ in range(p.random_repeats)]
        res.frontier.append({"method": "random", "rm_seed": seed, "set": "test", "quantile": float(qu),
                             "threshold": None, "matched_to": ref,
                             **{m: float(np.mean([e[m] for e in evs])) for m in
                                ("accuracy", "share_pruned", "share_tokens_saved", "tokens_generated")},
                             "tokens_total": evs[0]["tokens_total"]})


def _public(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k != "credit"}
