"""How much of a sequential method's test numbers is the order its samples happen to be drawn in (`order_spread`).

ESC, adaptive consistency and DeepConf's online mode draw each question's samples in a random order, one order per
rm seed in the frontier (`consistency.orders_of`), and stop once the samples drawn so far agree (or, for DeepConf,
skip the rest of a trace once its confidence falls). The vote over the samples drawn moves with that order: with
three seeds the frontier sees three orders, too few to tell a method that loses half a point of accuracy from one
that loses none. Here each method is replayed, at the setting validation chose, over many further orders of the
test samples (cheap: a replay costs no generation), which gives the method's accuracy and compute saved in
expectation over draw orders, with their standard error.

Beside each method, a reference for the noise: the unfiltered vote over the first K samples of every question in
the same orders, K the method's mean samples drawn per question. Its spread over orders is what any vote of K
samples has; a method whose spread is that large owes it to the number of samples it votes with, not to its rule.
"""

from __future__ import annotations

import numpy as np

from ..params import FilteringParams
from .consistency import draw_orders, sequential_spend
from .cost import Spend
from .deepconf import online_spend
from .frontier import FrontierResult
from .frontier_inputs import FrontierInputs
from .operating import evaluate_spend
from .samples import SampleSet
from .voting import vote_credit

ORDERED_METHODS = ("esc", "adaptive_consistency", "deepconf_online")
"""the frontier's methods whose samples are drawn in a random order"""


def _spend(method: str, value, ss: SampleSet, orders: list[np.ndarray], inp: FrontierInputs,
           p: FilteringParams) -> Spend:
    if method == "esc":
        return sequential_spend(ss, orders, "esc", value)
    if method == "adaptive_consistency":
        return sequential_spend(ss, orders, "adaptive", value)
    eta, tau = value
    f = p.frontier
    return online_spend(ss, inp.confidences["test"], orders, eta, f.warmup_traces, f.window, consensus=tau,
                        in_flight=f.deepconf_in_flight)


def prefix_vote(ss: SampleSet, orders: list[np.ndarray], k: int, tie_break: str) -> float:
    """Vote accuracy when every question votes with the first `k` samples of its order (all of them if fewer)."""
    kept = np.zeros(len(ss.answer), dtype=bool)
    for o in orders:
        kept[o[:k]] = True
    return float(np.mean(vote_credit(ss, kept, tie_break)))


def order_spread(p: FilteringParams, inp: FrontierInputs, samples: dict[str, SampleSet],
                 result: FrontierResult) -> list[dict]:
    """For each method of `ORDERED_METHODS` in `result.chosen` and each distinct setting validation chose for it
    (over rm seeds), its test numbers over `p.frontier.order_repeats` draw orders (seeded from `p.seed`, none of
    them the frontier's own). Returns one row per (method, setting):
    - rm_seeds (those that chose it), repeats;
    - accuracy_mean / _sd / _se (standard error of the mean over orders; None with one order), accuracy_unfiltered,
      accuracy_drop (the unfiltered vote's accuracy minus the mean; positive: worse), within_drop (the drop at most
      `frontier.max_accuracy_drop`);
    - share_compute_saved_mean / _sd, meets_target (within the drop and saving at least
      `frontier.target_compute_saved` on average), samples_per_question (mean drawn);
    - the prefix vote's reference: prefix_k (that mean, rounded), prefix_accuracy_mean / _sd.
    Empty with 0 repeats."""
    n = p.frontier.order_repeats
    if n <= 0:
        return []
    test, tb = samples["test"], p.tie_break
    full = float(np.mean(vote_credit(test, np.ones(len(test.answer), dtype=bool), tb)))
    settings: dict[tuple, list] = {}
    for r in result.chosen:
        if r["method"] in ORDERED_METHODS:
            v = r["setting_value"]
            key = (r["method"], r["setting"])
            settings.setdefault(key, [tuple(v) if isinstance(v, list) else v, []])[1].append(r["rm_seed"])
    orders = [draw_orders(test, [p.seed, 11, j]) for j in range(n)]
    rows = []
    for (method, label), (value, seeds) in settings.items():
        acc, saved, drawn = [], [], []
        for o in orders:
            spend = _spend(method, value, test, o, inp, p)
            ev = evaluate_spend(test, spend, inp.prompts["test"], inp.policy_params, tb)
            acc.append(ev["accuracy"])
            saved.append(ev["share_compute_saved"])
            drawn.append(float(spend.started.sum()) / test.n_questions)
        k = max(1, int(round(float(np.mean(drawn)))))
        ref = [prefix_vote(test, o, k, tb) for o in orders]
        acc_a = np.array(acc)
        drop = full - float(acc_a.mean())
        within = bool(drop <= p.frontier.max_accuracy_drop + 1e-12)
        rows.append({"method": method, "setting": label, "rm_seeds": seeds, "repeats": n,
                     "accuracy_mean": float(acc_a.mean()), "accuracy_sd": float(acc_a.std(ddof=1)) if n > 1 else 0.0,
                     "accuracy_se": float(acc_a.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
                     "accuracy_unfiltered": full, "accuracy_drop": drop, "within_drop": within,
                     "share_compute_saved_mean": float(np.mean(saved)),
                     "share_compute_saved_sd": float(np.std(saved, ddof=1)) if n > 1 else 0.0,
                     "meets_target": within and float(np.mean(saved)) >= p.frontier.target_compute_saved,
                     "samples_per_question": float(np.mean(drawn)), "prefix_k": k,
                     "prefix_accuracy_mean": float(np.mean(ref)),
                     "prefix_accuracy_sd": float(np.std(ref, ddof=1)) if n > 1 else 0.0})
    return rows
