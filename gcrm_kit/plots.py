"""Plotly figures for every notebook. Notebooks call these; no figure is drawn by code living in a notebook."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .runs import atomic_write_text

TRAINING_METRICS = ("bt_loss", "contrastive_loss", "accuracy", "reward_margin")


def training_curves(logs: dict[str, list[dict]], metrics: tuple[str, ...] = TRAINING_METRICS) -> go.Figure:
    """One panel per metric, one line per reward model run. `logs`: run name -> Trainer log_history."""
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
    groups = sorted({name.rsplit("_seed", 1)[0] for name in logs})
    for name, history in logs.items():
        color = palette[groups.index(name.rsplit("_seed", 1)[0]) % len(palette)]
        for col, m in enumerate(metrics, 1):
            pts = [(h["step"], h[m]) for h in history if m in h]
            if not pts:
                continue
            fig.add_trace(go.Scatter(x=[s for s, _ in pts], y=[v for _, v in pts], mode="lines", name=name,
                                     legendgroup=name, showlegend=col == 1, line={"color": color}),
                          row=1, col=col)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=350, width=320 * len(metrics), title="Reward-model training (train batches)")
    return fig


def auroc_by_split(summary: list[dict]) -> go.Figure:
    """Grouped bars: AUROC of the final reward for correctness per split, one bar per reward model, mean with
    sample std over seeds as error bars. The dashed line is chance (0.5)."""
    fig = go.Figure()
    for entry in summary:
        splits = list(entry["auroc"])
        fig.add_trace(go.Bar(
            name=f"{entry['reward_model']} (n={entry['n_seeds']})", x=splits,
            y=[entry["auroc"][s]["mean"] for s in splits],
            error_y={"type": "data", "array": [entry["auroc"][s]["std"] for s in splits]}))
    fig.add_hline(y=0.5, line_dash="dash", annotation_text="chance")
    fig.update_layout(barmode="group", yaxis={"title": "AUROC (correctness)", "range": [0.3, 1.0]},
                      title="AUROC of the final reward, in and out of distribution", height=400, width=800)
    return fig


def save_figure(fig: go.Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.html` (plotly.js in a shared file beside it, so it opens offline) and `<stem>.json`."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory")
    js = atomic_write_text(stem.with_suffix(".json"), fig.to_json())
    return html, js


# ------------------------------------------------------------------------------------------------ 03_filtering

METHOD_COLORS = {
    "q_goal": "#d62728", "q_baseline": "#1f77b4", "token_reward_goal": "#ff7f0e", "token_reward_baseline": "#17becf",
    "random": "#7f7f7f", "majority": "#000000", "best_of_n_goal": "#9467bd", "best_of_n_baseline": "#8c564b",
    "weighted_goal": "#e377c2", "weighted_baseline": "#bcbd22", "none": "#000000", "generate_all": "#444444",
}


def _mean_std(values):
    import numpy as np

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


def qvalue_traces(q, correct, first_error_char, threshold: float, skip: int, paper_threshold: float | None = None,
                  n: int = 8, seed: int = 0) -> go.Figure:
    """Per-token Q-values of `n` correct (green) and `n` incorrect (red) samples drawn at random. q: (S, L) with NaN
    past each end; first_error_char: per sample, the first wrong step's offset (a token index with a character
    tokenizer; a cross marks it) or None. Lines: the chosen threshold, the paper's, and the first `skip` tokens
    that never prune."""
    import numpy as np

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
            e = first_error_char[i]
            if e is not None and e < len(y):
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
