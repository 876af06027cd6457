"""Figures of notebook 03 (plotly): the accuracy/tokens-saved frontier, Q-value traces along sampled solutions,
and the real cost of online pruning."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..params import FilteringParams
from .offline import OfflineResult
from .samples import SampleSet

METHOD_COLORS = {
    "q_goal": "#d62728", "q_baseline": "#1f77b4", "token_reward_goal": "#ff7f0e", "token_reward_baseline": "#17becf",
    "random": "#7f7f7f", "majority": "#000000", "best_of_n_goal": "#9467bd", "best_of_n_baseline": "#8c564b",
    "weighted_goal": "#e377c2", "weighted_baseline": "#bcbd22", "none": "#000000", "generate_all": "#444444",
}


def _mean_std(values):
    # mean and sample std of what a figure shows (unlike evaluation.mean_std, NaNs are not dropped)
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def filtering_frontier(frontier: list[dict], rows: list[dict], split: str = "test") -> go.Figure:
    """Vote accuracy vs % of tokens saved, one line per pruning method over its threshold grid (mean over rm
    seeds at each grid point, std as error bars), on `split`. Stars: the thresholds chosen on validation;
    diamonds at 0% saved: best-of-N and reward-weighted voting; dashed: the unfiltered majority vote."""
    fig = go.Figure()
    methods = list(dict.fromkeys(f["method"] for f in frontier if f["set"] == split))
    for m in methods:
        pts = [f for f in frontier if f["method"] == m and f["set"] == split]
        qs = sorted({f["quantile"] for f in pts})
        xs, ys, es = [], [], []
        for q in qs:
            at = [f for f in pts if f["quantile"] == q]
            x, _ = _mean_std([100 * f["share_tokens_saved"] for f in at])
            y, e = _mean_std([f["accuracy"] for f in at])
            xs.append(x), ys.append(y), es.append(e)
        fig.add_trace(go.Scatter(x=xs, y=ys, error_y={"type": "data", "array": es, "thickness": 1},
                                 mode="lines+markers",
                                 name=m, line={"color": METHOD_COLORS.get(m)}, legendgroup=m,
                                 hovertext=[f"grid quantile {q}" for q in qs]))
        chosen = [r for r in rows if r["method"] == m]
        if chosen:
            x, _ = _mean_std([100 * r["share_tokens_saved"] for r in chosen])
            y, _ = _mean_std([r["accuracy"] for r in chosen])
            fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker={"symbol": "star", "size": 16,
                                     "color": METHOD_COLORS.get(m), "line": {"width": 1, "color": "black"}},
                                     name=f"{m} (chosen on validation)", legendgroup=m, showlegend=False))
    for r_name in ("best_of_n_goal", "best_of_n_baseline", "weighted_goal", "weighted_baseline"):
        rs = [r for r in rows if r["method"] == r_name]
        if rs:
            y, e = _mean_std([r["accuracy"] for r in rs])
            fig.add_trace(go.Scatter(x=[0], y=[y], error_y={"type": "data", "array": [e]}, mode="markers",
                                     marker={"symbol": "diamond", "size": 11, "color": METHOD_COLORS.get(r_name)},
                                     name=r_name))
    maj = [r["accuracy"] for r in rows if r["method"] == "majority"]
    if maj:
        fig.add_hline(y=maj[0], line_dash="dash", annotation_text="majority vote, all samples")
    fig.update_layout(title=f"Accuracy vs tokens saved ({split} questions; stars: thresholds chosen on validation)",
                      xaxis={"title": "% of generated tokens saved"}, yaxis={"title": "majority-vote accuracy"},
                      height=480, width=900)
    return fig


def qvalue_traces(q, correct, first_error_token, threshold: float, skip: int, paper_threshold: float | None = None,
                  n: int = 8, seed: int = 0) -> go.Figure:
    """Per-token Q-values of `n` correct (green) and `n` incorrect (red) samples drawn at random. q: (S, L) with NaN
    past each end; first_error_token: per sample, the response token index (the column of `q`) holding the first
    wrong step, or None / a negative number for none; a cross marks it. It is a TOKEN index: map a verifier's
    character offset with `qvalues.response_token_index` first (`SampleSet.first_error_token` does).
    Lines: the chosen threshold, the paper's, and the first `skip` tokens that never prune."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(correct, dtype=bool)
    fig = go.Figure()
    for label, pool, color in (("correct", np.flatnonzero(correct), "#2ca02c"),
                               ("incorrect", np.flatnonzero(~correct), "#d62728")):
        pick = rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else []
        for k, i in enumerate(pick):
            y = q[i][~np.isnan(q[i])]
            fig.add_trace(go.Scatter(x=list(range(len(y))), y=y.tolist(), mode="lines", name=label,
                                     legendgroup=label, showlegend=k == 0, line={"color": color, "width": 1}))
            e = first_error_token[i]
            if e is not None and 0 <= e < len(y):
                e = int(e)
                fig.add_trace(go.Scatter(x=[e], y=[float(y[e])], mode="markers", legendgroup="first error",
                                         marker={"symbol": "x", "size": 9, "color": "black"}, name="first wrong step",
                                         showlegend=bool(label == "incorrect" and k == 0)))
    fig.add_hline(y=threshold, line_dash="dash", annotation_text="chosen threshold")
    if paper_threshold is not None:
        fig.add_hline(y=paper_threshold, line_dash="dot", annotation_text="paper's threshold")
    fig.add_vrect(x0=-0.5, x1=skip - 0.5, fillcolor="grey", opacity=0.15, line_width=0,
                  annotation_text=f"first {skip} tokens never prune")
    fig.update_layout(title="Q-values along sampled solutions (goal-conditioned RM)",
                      xaxis={"title": "response token"}, yaxis={"title": "Q = cos(h_t, g)"}, height=420, width=900)
    return fig


def online_cost(online: list[dict]) -> go.Figure:
    """Online runs: % of policy tokens and % of wall-clock saved relative to generating every sample with the same
    chunked loop (`none`), per method, mean over rm seeds with std."""
    methods = [m for m in dict.fromkeys(r["method"] for r in online) if m != "none"]
    fig = go.Figure()
    for key, label in (("share_tokens_saved", "% tokens saved"), ("share_seconds_saved", "% wall-clock saved")):
        ys, es = [], []
        for m in methods:
            y, e = _mean_std([100 * r[key] for r in online if r["method"] == m])
            ys.append(y), es.append(e)
        fig.add_trace(go.Bar(x=methods, y=ys, error_y={"type": "data", "array": es}, name=label))
    fig.add_hline(y=0, line_color="black")
    fig.update_layout(barmode="group", title="Online pruning: what is really saved (vs generating every sample)",
                      yaxis={"title": "% saved (negative: costs more)"}, height=420, width=900)
    return fig


def trace_figure(p: FilteringParams, samples: dict[str, SampleSet], scores: dict, offline: OfflineResult):
    """Q-value traces of test samples (goal-conditioned RM, first rm seed) with its chosen threshold."""
    test = samples["test"]
    return qvalue_traces(scores[("goal", 0)]["test"].q, test.correct, test.first_error_token,
                         offline.chosen[("q_goal", 0)]["threshold"], p.skip_tokens, p.paper_threshold, seed=p.seed)


FRONTIER_COLORS = {
    "deepconf_offline_lowest": "#2ca02c", "deepconf_offline_tail": "#98df8a", "deepconf_online": "#006d2c",
    "speculative_goal": "#c49c94", "speculative_baseline": "#f7b6d2", "esc": "#393b79",
    "adaptive_consistency": "#6b6ecf",
    "probe": "#e6550d", "oracle_first_error": "#000000", "oracle_vote": "#525252",
}


def compute_frontier(points: list[dict], chosen: list[dict], oracles: list[dict], split: str = "test",
                     target_compute_saved: float | None = None) -> go.Figure:
    """Vote accuracy against total compute (policy + scorer FLOPs, as a share of generating every sample with no
    scorer), every method on one figure: a line per method over its settings (mean over rm seeds, std as error
    bars; methods with one setting are single markers), stars at the settings chosen on validation (mean +- std
    over rm seeds of their test numbers), crosses for the oracles; dashed: the unfiltered vote; dotted: the
    compute target. points, chosen, oracles: `frontier.FrontierResult`'s lists."""
    fig = go.Figure()
    color = {**METHOD_COLORS, **FRONTIER_COLORS}
    methods = list(dict.fromkeys(r["method"] for r in chosen))
    for m in methods:
        pts = [r for r in points if r["method"] == m and r["set"] == split]
        settings = list(dict.fromkeys(r["setting"] for r in pts))
        xs, ys, es = [], [], []
        for s in settings:
            at = [r for r in pts if r["setting"] == s]
            x, _ = _mean_std([1 - r["share_compute_saved"] for r in at])
            y, e = _mean_std([r["accuracy"] for r in at])
            xs.append(x), ys.append(y), es.append(e)
        mode = next(r["mode"] for r in chosen if r["method"] == m)
        order = np.argsort(xs, kind="stable")  # drawn left to right: a frontier, not the grid's order
        xs, ys, es, settings = ([v[i] for i in order] for v in (xs, ys, es, settings))
        if len(settings) > 1:
            fig.add_trace(go.Scatter(x=xs, y=ys, error_y={"type": "data", "array": es, "thickness": 1},
                                     mode="lines+markers", name=f"{m} ({mode})", legendgroup=m,
                                     line={"color": color.get(m), "dash": "dot" if mode == "offline" else "solid"},
                                     hovertext=settings))
        rows = [r for r in chosen if r["method"] == m]
        x, ex = _mean_std([1 - r["share_compute_saved"] for r in rows])
        y, ey = _mean_std([r["accuracy"] for r in rows])
        fig.add_trace(go.Scatter(x=[x], y=[y], error_x={"type": "data", "array": [ex]},
                                 error_y={"type": "data", "array": [ey]}, mode="markers",
                                 marker={"symbol": "star", "size": 15, "color": color.get(m),
                                         "line": {"width": 1, "color": "black"}},
                                 name=f"{m} ({mode})" if len(settings) <= 1 else m,
                                 legendgroup=m, showlegend=len(settings) <= 1,
                                 hovertext=[f"{m}: {rows[0]['setting']}"]))
    for o in oracles:
        fig.add_trace(go.Scatter(x=[1 - o["share_compute_saved"]], y=[o["accuracy"]], mode="markers",
                                 marker={"symbol": "x", "size": 13, "color": color.get(o["method"])},
                                 name=f"{o['method']} (knows the labels)"))
    maj = [r["accuracy"] for r in chosen if r["method"] == "majority"]
    if maj:
        fig.add_hline(y=maj[0], line_dash="dash", annotation_text="majority vote, all samples")
    if target_compute_saved is not None:
        fig.add_vline(x=1 - target_compute_saved, line_dash="dot",
                      annotation_text=f"{100 * target_compute_saved:g}% of compute saved")
    fig.update_layout(title=f"Vote accuracy vs total compute ({split} questions; stars: settings chosen on "
                            "validation)", xaxis={"title": "compute (policy + scorer FLOPs) / generating every sample"},
                      yaxis={"title": "vote accuracy"}, height=760, width=1100)
    return fig
