"""What notebook 03 shows and saves: the mean/std summary over rm seeds, its tables, metrics.json (written by
`write_metrics` alone), the per-question table and the figures (`finish` does all three at the end of a run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import evaluation, plots
from ..bounds import WorldBounds
from ..params import FilteringParams
from ..runs import Run
from .figures import compute_frontier, filtering_frontier, online_cost, trace_figure
from .frontier import FrontierResult
from .methods import METHOD_ORDER
from .offline import OfflineResult
from .samples import SampleSet, sample_summary
from .setup import RMSetup
from .voting import vote_winner

OFFLINE_METRICS = ("accuracy", "accuracy_unfiltered", "share_pruned", "share_tokens_saved")
ONLINE_METRICS = ("share_tokens_saved", "share_seconds_saved", "share_seconds_saved_vs_generate_all", "accuracy",
                  "seconds")


def summarise(rows: list[dict], online: list[dict]) -> list[dict]:
    """Mean and sample std over rm seeds, per method (in METHOD_ORDER), of the test numbers at the chosen
    thresholds: {method, n_seeds, <metric>: {mean, std}, online_<metric>: {mean, std} (when run online)}."""
    offline = {e["method"]: e for e in evaluation.summarise_over_seeds(rows, ["method"], OFFLINE_METRICS)}
    on = {e["method"]: e for e in evaluation.summarise_over_seeds(online, ["method"], ONLINE_METRICS)}
    out = []
    for m in [x for x in METHOD_ORDER if x in offline]:
        e = offline[m]
        e.update({f"online_{key}": on[m][key] for key in ONLINE_METRICS if key in on.get(m, {})})
        out.append(e)
    return out


@dataclass
class FilteringResult:
    """What notebook 03 produced (see OfflineResult for rows/frontier); online: one row per online run;
    summary: mean/std over rm seeds per method."""

    run_dir: Path
    setup: RMSetup
    samples: dict[str, SampleSet]
    offline: OfflineResult
    online: list[dict]
    summary: list[dict]
    figures: dict = field(default_factory=dict)
    frontier: FrontierResult | None = None


def finish(p: FilteringParams, run: Run, setup: RMSetup, samples: dict[str, SampleSet],
           scores: dict, offline: OfflineResult, online: list[dict],
           bounds: WorldBounds | None = None, frontier: FrontierResult | None = None) -> FilteringResult:
    """Write metrics.json (with the test set's `bounds` and the accuracy-vs-compute `frontier` when measured), the
    per-question table (per_question.csv) and the figures; return the result."""
    summary = summarise(offline.rows, online)
    result = FilteringResult(run.dir, setup, samples, offline, online, summary, frontier=frontier)
    write_metrics(run, p, setup, samples, offline, online, summary, bounds, frontier)
    per_question_table(samples["test"], offline, p, setup.rm_seeds).to_csv(run.path("per_question.csv"))
    result.figures = save_figures(run, result, scores, p)
    return result


def write_metrics(run: Run, p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet],
                  offline: OfflineResult, online: list[dict], summary: list[dict],
                  bounds: WorldBounds | None = None, frontier: FrontierResult | None = None) -> None:
    """metrics.json of the run: the params that matter, the samples, every offline row (chosen thresholds and the
    paper's), the signals' AUROC, the online runs, the summary, the frontier, what each reward model is and, when
    measured, the facts that bound every method on the test samples (`world_bounds`: {"test":
    `bounds.WorldBounds.as_dict`}) and the accuracy-vs-compute frontier (`compute_frontier`:
    `frontier.FrontierResult.as_dict`: cost model, target and the methods meeting it, per-method summary, chosen
    settings per rm seed, oracles, every point)."""
    metrics = {
        "notebook": p.notebook, "params_name": p.params_name, "seed": p.seed, "rm_run": str(setup.run_dir),
        "rm_seeds": setup.rm_seeds, "goal_rm": p.goal_rm, "baseline_rm": p.baseline_rm,
        "samples_per_question": p.samples_per_question, "skip_tokens": p.skip_tokens, "tie_break": p.tie_break,
        "all_pruned": p.all_pruned, "samples": sample_summary(samples), "rows": offline.rows,
        "paper_threshold": offline.paper_rows, "signals": offline.signals, "online": online, "summary": summary,
        "frontier": offline.frontier, "reward_models": setup.objectives(), "prm": setup.prm_name or None,
        "left_out": setup.left_out}
    if bounds is not None:
        metrics["world_bounds"] = {"test": bounds.as_dict()}
    if frontier is not None:
        metrics["compute_frontier"] = frontier.as_dict()
    run.write_json("metrics.json", metrics)


def save_figures(run: Run, result: FilteringResult, scores: dict, p: FilteringParams) -> dict:
    """The frontier, Q-value traces and the online cost, as plotly HTML + JSON in run/figures/."""
    figs = {"frontier": filtering_frontier(result.offline.frontier, result.offline.rows),
            "qvalue_traces": trace_figure(p, result.samples, scores, result.offline)}
    if result.online:
        figs["online_cost"] = online_cost(result.online)
    fr = result.frontier
    if fr is not None:
        figs["compute_frontier"] = compute_frontier(fr.points, fr.chosen, fr.oracles,
                                                    target_compute_saved=fr.target["target_compute_saved"])
    for name, fig in figs.items():
        plots.save_figure(fig, run.path("figures", name))
    return figs


def results_table(rows: list[dict], online: list[dict] | None = None):
    """Mean ± std over rm seeds per method on the test questions at the validation-chosen thresholds
    (pandas DataFrame); `rows` from OfflineResult, `online` from `evaluate_online`."""
    def f(e, key, pct=False):
        v = e.get(key)
        if v is None:
            return ""
        return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f}" if pct else f"{v['mean']:.3f} ± {v['std']:.3f}"

    out = []
    for e in summarise(rows, online or []):
        r = {"method": e["method"], "seeds": e["n_seeds"], "vote accuracy": f(e, "accuracy"),
             "unfiltered": f(e, "accuracy_unfiltered"), "% pruned": f(e, "share_pruned", True),
             "% tokens saved (offline)": f(e, "share_tokens_saved", True)}
        if online:
            r.update({"% tokens saved (online)": f(e, "online_share_tokens_saved", True),
                      "% wall-clock saved (online)": f(e, "online_share_seconds_saved", True),
                      "online accuracy": f(e, "online_accuracy")})
        out.append(r)
    return pd.DataFrame(out).set_index("method")


def statistics_table(rows: list[dict]):
    """The paper's statistics per (method, rm seed): share pruned, share of tokens saved, proportion correct
    among kept vs all samples with the released evaluation's Student's t-test over per-question shares, and the
    paired test of the vote accuracy (DataFrame)."""
    out = []
    for r in rows:
        if "correct_kept" not in r:
            continue
        out.append({"method": r["method"], "rm_seed": r["rm_seed"], "threshold": r.get("threshold"),
                    "vote acc": r["accuracy"], "unfiltered": r["accuracy_unfiltered"],
                    "% pruned": 100 * r["share_pruned"], "% tokens saved": 100 * r["share_tokens_saved"],
                    "correct | kept": r["correct_kept"], "correct | all": r["correct_all"],
                    "p (kept vs all)": r["ttest_kept_vs_all"]["p"],
                    "p (kept vs pruned)": r["ttest_kept_vs_pruned"]["p"],
                    "p (vote, paired)": r["paired_vote_ttest"]["p"]})
    return pd.DataFrame(out).set_index(["method", "rm_seed"])


def signal_table(signals: list[dict]):
    """AUROC for correctness of what each pruning method thresholds (its minimum after k tokens) and of its last
    value, pooled and within questions, per rm seed (DataFrame)."""
    df = pd.DataFrame(signals).set_index(["method", "rm_seed"])
    return df.rename(columns={"min_auroc": "AUROC min", "min_auroc_within_question": "AUROC min (within q)",
                              "last_auroc": "AUROC last", "last_auroc_within_question": "AUROC last (within q)",
                              "argmin_position": "min at (fraction)"})


def online_table(online: list[dict]):
    """Online runs per method, mean over rm seeds: tokens generated, seconds, savings, accuracy (DataFrame)."""
    df = pd.DataFrame(online)
    cols = ["policy_tokens", "scorer_tokens", "seconds", "share_tokens_saved", "share_seconds_saved",
            "share_seconds_saved_vs_generate_all", "accuracy", "decisions_match_offline",
            "kept_responses_match_offline"]
    cols = [c for c in cols if c in df]
    order = ["generate_all", "none"] + [m for m in METHOD_ORDER if m != "majority"]
    g = df.groupby("method")[cols].mean()
    return g.loc[[m for m in order if m in g.index]]


def per_question_table(ss: SampleSet, offline: OfflineResult, p: FilteringParams, rm_seeds: list[int],
                       method: str = "q_goal", seed_index: int = 0):
    """One row per test question for `method` at its chosen threshold (first rm seed): samples, correct ones,
    kept ones, the unfiltered and the filtered vote's answer, their credit, tokens generated of all (DataFrame)."""
    prune = offline.chosen[(method, seed_index)]["prune_at"]
    kept = prune < 0
    everything = np.ones_like(kept)
    unf, filt = vote_winner(ss, everything), vote_winner(ss, kept)
    cu = offline.credits[("majority", -1)]
    cf = offline.credits[(method, seed_index)]
    gen = np.where(kept, ss.length, np.minimum(prune + 1, ss.length))
    rows = []
    for qi, prompt in enumerate(ss.prompts):
        m = ss.question == qi
        right = [a for a, ok in zip(ss.answers[qi], ss.group_correct[qi]) if ok]
        rows.append({"question": prompt, "samples": int(m.sum()), "correct": int(ss.correct[m].sum()),
                     "kept": int(kept[m].sum()), "kept correct": int((kept & ss.correct)[m].sum()),
                     "right answer": right[0] if right else None, "vote (all)": unf[qi],
                     "vote (kept)": filt[qi], "credit (all)": float(cu[qi]), "credit (kept)": float(cf[qi]),
                     "tokens generated": int(gen[m].sum()), "tokens (all)": int(ss.length[m].sum())})
    return pd.DataFrame(rows)
