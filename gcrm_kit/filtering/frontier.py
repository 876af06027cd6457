"""The accuracy-vs-compute frontier of notebook 03: every method on the same samples, each operating point priced by
`cost.flops`, the point chosen on validation questions by compute saved (`operating.choose_point`) and reported on
test questions, for every rm seed; beside them the oracles of `gcrm_kit.bounds` (`evaluate_frontier`).

Modes: ``online`` methods ran in the generation loop of section 7 (their measured seconds are there);
``replay`` methods stop samples early and are replayed on the finished samples, exactly, since a sample's tokens
depend only on (seed, sample id); ``offline`` methods generate every sample and only choose who votes; ``oracle``
points know the verifier's labels. Sequential methods draw each question's samples in a random order, one per seed;
the probe is trained once (with `seed`), so its numbers are the same for every rm seed, as DeepConf's offline ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from .. import evaluation
from ..bounds import first_error_chars, first_error_stop, vote_oracle
from ..params import FilteringParams
from ..toyworld.problems import STEP_SEP
from .consistency import orders_of, sequential_spend
from .cost import FLOPS_PER_PARAM_TOKEN, Spend, break_even_scorer_ratio, flops, full_spend, scorer_reads
from .deepconf import lowest_group, offline_spend, online_spend, tail
from .frontier_inputs import FrontierInputs
from .methods import FRONTIER_ORDER, PRUNING, REWARD_MODELS, SETS, pruning_methods
from .offline import OfflineResult
from .operating import choose_point, evaluate_spend
from .pruning import prune_positions, threshold_grid
from .samples import SampleSet
from .speculative import rejection_spend
from .voting import best_of_n_credit, vote_credit, weighted_credit

SUMMARY_METRICS = ("accuracy", "share_compute_saved", "share_tokens_saved", "flops", "seconds_online",
                   "seconds_flop_model", "share_seconds_saved")


@dataclass
class FrontierResult:
    """points: every (method, rm seed, set, setting) evaluated; chosen: per (method, rm seed) the test numbers at
    the setting chosen on validation; oracles: test points of the oracles; summary: mean/std over rm seeds per
    method; target: which methods save `target_compute_saved` of compute within `max_accuracy_drop` of the
    unfiltered vote on test; skipped: method family -> why it was left out."""

    points: list[dict]
    chosen: list[dict]
    oracles: list[dict]
    summary: list[dict]
    target: dict
    skipped: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    """the cost model's parameter counts and what it counts"""
    online: list[dict] = field(default_factory=list)
    """runs of the sequential methods in the generation loop (`sequential_online`), when made"""
    order_spread: list[dict] = field(default_factory=list)
    """the sequential methods replayed over many draw orders (`order_spread.order_spread`), when made"""

    def as_dict(self) -> dict:
        """A JSON-able dict for metrics.json."""
        return {"cost": self.cost, "target": self.target, "skipped": self.skipped, "summary": self.summary,
                "chosen": self.chosen, "oracles": self.oracles, "online": self.online,
                "order_spread": self.order_spread, "points": self.points}


def pruning_spend(ss: SampleSet, prune_at: np.ndarray, prompts: np.ndarray, scorer_params: float, tie_break: str,
                  all_pruned: str) -> Spend:
    """The spend of pruning at `prune_at` ((S,) index or -1), accounted as `pruning.evaluate_pruning` does (a
    question whose samples are all pruned abstains, or with `all_pruned='unfiltered'` votes over all of them, all
    generated); the scorer follows generation and reads every generated token once."""
    kept = prune_at < 0
    generated = np.where(kept, ss.length, np.minimum(prune_at + 1, ss.length))
    credit = vote_credit(ss, kept, tie_break)
    gone = np.bincount(ss.question, weights=kept.astype(float), minlength=ss.n_questions) == 0
    if all_pruned == "unfiltered" and gone.any():
        credit = np.where(gone, vote_credit(ss, np.ones_like(kept), tie_break), credit)
        generated = np.where(gone[ss.question], ss.length, generated)
    return Spend(np.ones(len(kept), dtype=bool), generated, kept, scorer_read=scorer_reads(prompts, generated),
                 scorer_params=scorer_params, credit=credit)


def _grids(p: FilteringParams, inp: FrontierInputs, samples: dict[str, SampleSet], scores: dict,
           offline: OfflineResult, si: int, seed: int) -> dict:
    """method -> (mode, settings [(label, value)], spend(set, value) -> Spend) for rm seed index `si`."""
    f, tb, ap, k = p.frontier, p.tie_break, p.all_pruned, p.skip_tokens
    P, pr = inp.scorer_params, inp.prompts
    orders = orders_of(samples, p.seed, si)
    g: dict = {"majority": ("online", [("all samples", None)], lambda s, v: full_spend(samples[s].length))}
    for m, (which, signal) in pruning_methods(scores, si).items():  # the PRM's among them when it was scored
        taus = [x for x in offline.frontier if x["method"] == m and x["rm_seed"] == seed and x["set"] == "validation"]
        mode = "online" if m in PRUNING else "replay"  # the PRM's pruning is not run in the generation loop
        g[m] = (mode, [(f"quantile {x['quantile']}", x["threshold"]) for x in taus],
                lambda s, v, w=which, sg=signal: pruning_spend(
                    samples[s], prune_positions(scores[(w, si)][s].signal(sg), v, k), pr[s], P[w], tb, ap))
    for which in REWARD_MODELS:
        def reward_spend(s, v, w=which, kind="best_of_n"):
            ss, r = samples[s], scores[(w, si)][s].reward
            credit = best_of_n_credit(ss, r) if kind == "best_of_n" else weighted_credit(ss, r, tb)
            return Spend(np.ones(len(r), dtype=bool), ss.length, np.ones(len(r), dtype=bool),
                         scorer_read=scorer_reads(pr[s], ss.length), scorer_params=P[w], credit=credit)
        g[f"best_of_n_{which}"] = ("online", [("all samples", None)], reward_spend)
        g[f"weighted_{which}"] = ("online", [("all samples", None)],
                                  lambda s, v, w=which: reward_spend(s, v, w, "weighted"))
    if inp.confidences is not None:
        c = inp.confidences
        etas = [(f"keep {e:g}%", e) for e in f.keep_percents]
        g["deepconf_offline_lowest"] = ("offline", etas, lambda s, v: offline_spend(
            samples[s], lowest_group(c[s], f.window), v))
        g["deepconf_offline_tail"] = ("offline", etas, lambda s, v: offline_spend(samples[s], tail(c[s], f.tail), v))
        online = [(label, (e, None)) for label, e in etas] + [
            (f"keep {e:g}%, consensus {t:g}", (e, t)) for e in f.keep_percents for t in f.consensus_thresholds]
        g["deepconf_online"] = ("replay", online, lambda s, v: online_spend(
            samples[s], c[s], orders[s], v[0], f.warmup_traces, f.window, consensus=v[1],
            in_flight=f.deepconf_in_flight))
    for which in REWARD_MODELS:
        g[f"speculative_{which}"] = (
            "replay", [(f"reject at {r}, keep {a:g}", (r, a)) for r, a in product(f.rejection_points,
                                                                                   f.keep_fractions)],
            lambda s, v, w=which: rejection_spend(samples[s], scores[(w, si)][s].token_reward, pr[s], v[0], v[1],
                                                  P[w]))
    g["esc"] = ("replay", [(f"window {w}", w) for w in f.esc_windows],
                lambda s, v: sequential_spend(samples[s], orders[s], "esc", v))
    g["adaptive_consistency"] = ("replay", [(f"threshold {c:g}", c) for c in f.adaptive_thresholds],
                                 lambda s, v: sequential_spend(samples[s], orders[s], "adaptive", v))
    if inp.probe is not None:
        vals = inp.probe
        taus = threshold_grid(vals["validation"], k, p.threshold_quantiles)
        g["probe"] = ("replay", [(f"quantile {q}", t) for q, t in zip(p.threshold_quantiles, taus)],
                      lambda s, v: pruning_spend(samples[s], prune_positions(vals[s], v, k), pr[s], inp.probe_params,
                                                 tb, ap))
    return g


def _point(ss: SampleSet, spend: Spend, inp: FrontierInputs, s: str, tb: str) -> dict:
    ev = evaluate_spend(ss, spend, inp.prompts[s], inp.policy_params, tb)
    ev.pop("credit")
    ev["break_even_scorer_ratio"] = break_even_scorer_ratio(spend, inp.prompts[s], ss.length, inp.policy_params)
    return ev


def _random_rows(p: FilteringParams, inp: FrontierInputs, test: SampleSet, offline: OfflineResult, seed: int):
    """Random pruning at `RANDOM_MATCHED_TO`'s budgets (its rows, averaged over draws): no scorer."""
    ref = flops(full_spend(test.length), inp.prompts["test"], inp.policy_params)["flops"]

    def point(r):
        pol = FLOPS_PER_PARAM_TOKEN * inp.policy_params * float(inp.prompts["test"].sum() + r["tokens_generated"])
        return {"accuracy": r["accuracy"], "policy_flops": pol, "scorer_flops": 0.0, "flops": pol,
                "policy_tokens": r["tokens_generated"], "scorer_tokens": 0, "share_compute_saved": 1 - pol / ref,
                "share_tokens_saved": r["share_tokens_saved"], "share_started": 1.0,
                "share_kept": 1 - r["share_pruned"], "break_even_scorer_ratio": None}
    pts = [{"method": "random", "rm_seed": seed, "set": "test", "setting": f"matched to quantile {r['quantile']}",
            "mode": "online", **point(r)} for r in offline.frontier if r["method"] == "random" and r["rm_seed"] == seed]
    row = next(r for r in offline.rows if r["method"] == "random" and r["rm_seed"] == seed)
    return pts, {"method": "random", "rm_seed": seed, "mode": "online", "setting": f"matched to {row['matched_to']}",
                 **point(row)}


def _seconds(online: list[dict], method: str, seed: int) -> float | None:
    name, want = ("none", None) if method == "majority" else (method, seed)
    got = [r["seconds"] for r in online if r["method"] == name and r.get("rm_seed") == want]
    return float(got[0]) if got else None


def oracle_points(test: SampleSet, inp: FrontierInputs, tie_break: str) -> tuple[list[dict], dict]:
    """The first-error oracle (each wrong sample stops right after its first wrong step and does not vote; the
    others run to their end and vote) and the vote-level oracle (per question only the shortest sample of the
    majority answer finishes, the others stop at their first token: it keeps every question's vote outcome, so it
    sits at the unfiltered vote's accuracy; `bounds.majority_answer` breaks ties by the first answer in order,
    its accuracy with that rule is `accuracy_lexicographic_ties`) on the test samples, from `gcrm_kit.bounds`.
    Returns (points, skipped)."""
    pts, skipped = [], {}
    tok, pr, P = inp.tokenizer, inp.prompts["test"], inp.policy_params
    chars = first_error_chars(test.records)
    if chars is None:
        skipped["oracle_first_error"] = "the samples carry no first wrong step (meta first_error_char)"
    else:
        gen, kept = test.length.copy(), np.ones(len(test.length), dtype=bool)
        for i, r in enumerate(test.records):
            if not r.is_correct and chars[i] is not None:
                stop = first_error_stop(tok, r.response, chars[i], STEP_SEP)
                if stop is not None and stop < gen[i]:
                    gen[i], kept[i] = stop, False
        spend = Spend(np.ones(len(gen), dtype=bool), gen, kept)
        pts.append({"method": "oracle_first_error", "set": "test", "mode": "oracle", "setting": "verifier",
                    **_point(test, spend, inp, "test", tie_break)})
    try:
        saving, acc_lexicographic, _ = vote_oracle(test.records, test.length)
    except ValueError as e:
        skipped["oracle_vote"] = str(e)
    else:
        total = float(test.length.sum())
        pol = FLOPS_PER_PARAM_TOKEN * P * float(pr.sum() + (1 - saving) * total)
        ref = FLOPS_PER_PARAM_TOKEN * P * float(pr.sum() + total)
        pts.append({"method": "oracle_vote", "set": "test", "mode": "oracle", "setting": "verifier",
                    "accuracy": float(np.mean(vote_credit(test, np.ones(len(test.length), dtype=bool), tie_break))),
                    "accuracy_lexicographic_ties": acc_lexicographic, "policy_flops": pol, "scorer_flops": 0.0,
                    "flops": pol,
                    "share_compute_saved": 1 - pol / ref, "share_tokens_saved": saving})
    return pts, skipped


def evaluate_frontier(p: FilteringParams, inp: FrontierInputs, samples: dict[str, SampleSet], scores: dict,
                      offline: OfflineResult, online: list[dict], rm_seeds: list[int]) -> FrontierResult:
    """Every method of `FRONTIER_ORDER` whose inputs exist, at every setting of its grid on both sets, for every rm
    seed; the setting chosen on validation (most compute saved at accuracy within `frontier.max_accuracy_drop` of
    the unfiltered vote) reported on test with the seconds measured online (section 7's run of that method, at
    its own threshold; None for methods not run online) and the seconds the FLOP model predicts (FLOPs x the
    measured seconds per FLOP of generating every sample)."""
    tb, drop = p.tie_break, p.frontier.max_accuracy_drop
    unf = {s: _point(ss, full_spend(ss.length), inp, s, tb) for s, ss in samples.items()}
    none_s = _seconds(online, "majority", None)  # generating every sample in the online loop, no scorer
    per_flop = None if none_s is None else none_s / unf["test"]["flops"]
    points, chosen = [], []
    for si, seed in enumerate(rm_seeds):
        for method, (mode, settings, spend) in _grids(p, inp, samples, scores, offline, si, seed).items():
            ev = {s: [_point(ss, spend(s, v), inp, s, tb) for _, v in settings] for s, ss in samples.items()}
            for s in SETS:
                points += [{"method": method, "rm_seed": seed, "set": s, "setting": lab, "mode": mode, **e}
                           for (lab, _), e in zip(settings, ev[s])]
            i = choose_point(ev["validation"], unf["validation"]["accuracy"], drop)
            value = settings[i][1]
            chosen.append({"method": method, "rm_seed": seed, "mode": mode, "setting": settings[i][0],
                           "setting_value": list(value) if isinstance(value, tuple) else value,
                           "validation_accuracy": ev["validation"][i]["accuracy"],
                           "validation_share_compute_saved": ev["validation"][i]["share_compute_saved"],
                           **ev["test"][i]})
        rp, rrow = _random_rows(p, inp, samples["test"], offline, seed)
        points += rp
        chosen.append(rrow)
    for r in chosen:
        r["accuracy_unfiltered"] = unf["test"]["accuracy"]
        r["seconds_online"] = _seconds(online, r["method"], r["rm_seed"])
        r["seconds_flop_model"] = None if per_flop is None else r["flops"] * per_flop
        # wall-clock saved against generating every sample in the same loop: what the online target compares with
        # the compute saved
        r["share_seconds_saved"] = (None if r["seconds_online"] is None or not none_s
                                    else 1 - r["seconds_online"] / none_s)
    oracles, skipped = oracle_points(samples["test"], inp, tb)
    order = {m: i for i, m in enumerate(FRONTIER_ORDER)}
    chosen.sort(key=lambda r: (order.get(r["method"], len(order)), r["rm_seed"]))
    summary = evaluation.summarise_over_seeds(chosen, ["method"], SUMMARY_METRICS)
    meets = [e["method"] for e in summary
             if e["share_compute_saved"]["mean"] >= p.frontier.target_compute_saved
             and e["accuracy"]["mean"] >= unf["test"]["accuracy"] - drop - 1e-12]
    target = {"target_compute_saved": p.frontier.target_compute_saved, "max_accuracy_drop": drop,
              "accuracy_unfiltered": unf["test"]["accuracy"], "methods_meeting_target": meets}
    cost = {"policy_params": inp.policy_params, "scorer_params": {**inp.scorer_params, "probe": "d + 1"},
            "flops_per_param_token": FLOPS_PER_PARAM_TOKEN,
            "counted": "policy: prompt of every started sample + generated tokens; scorer: tokens it read (prompt "
                       "included), each once; 2 FLOPs per parameter per token, input embeddings left out, attention "
                       "over the context left out"}
    return FrontierResult(points, chosen, oracles, summary, target, {**inp.skipped, **skipped}, cost)
