"""Plotly figures for every notebook. Notebooks call these; no figure is drawn by code living in a notebook."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .io import atomic_write_text

TRAINING_METRICS = ("bt_loss", "contrastive_loss", "grm_loss", "accuracy", "reward_margin")


def training_curves(logs: dict[str, list[dict]], metrics: tuple[str, ...] = TRAINING_METRICS) -> go.Figure:
    """One panel per metric that any run logged, one line per reward model run.
    `logs`: run name -> Trainer log_history."""
    metrics = tuple(m for m in metrics if any(m in h for hist in logs.values() for h in hist)) or metrics[:1]
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


def auroc_vs_pairs(curve: list[dict]) -> go.Figure:
    """AUROC against the number of training pairs (log x axis), one line per reward model, mean with std over
    seeds: in distribution (left) and averaged over the out-of-distribution splits (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("ID AUROC", "mean OOD AUROC"), shared_yaxes=True)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
    names = list(dict.fromkeys(e["reward_model"] for e in curve))
    for i, name in enumerate(names):
        pts = sorted((e for e in curve if e["reward_model"] == name), key=lambda e: e["n_train_pairs"])
        for col, key in ((1, "auroc_id"), (2, "auroc_ood_mean")):
            fig.add_trace(go.Scatter(
                x=[e["n_train_pairs"] for e in pts], y=[e[key]["mean"] for e in pts],
                error_y={"type": "data", "array": [e[key]["std"] for e in pts]}, mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1, line={"color": palette[i % len(palette)]}),
                row=1, col=col)
    fig.update_xaxes(type="log", title_text="training pairs")
    fig.update_yaxes(title_text="AUROC (correctness)", row=1, col=1)
    fig.update_layout(height=400, width=950, title="AUROC against the amount of preference data")
    return fig


def best_of_n(summary: list[dict], references: list[dict]) -> go.Figure:
    """Best-of-n accuracy against n (log x axis), one line per reward model (mean with std over seeds), one panel
    per training-set size; dashed: a random pick and the oracle (right whenever one of the n is)."""
    sizes = sorted({e["n_train_pairs"] for e in summary})
    fig = make_subplots(rows=1, cols=len(sizes), shared_yaxes=True,
                        subplot_titles=[f"{n} training pairs" for n in sizes])
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
    names = list(dict.fromkeys(e["reward_model"] for e in summary))
    ns = [r["n"] for r in references]
    for col, size in enumerate(sizes, start=1):
        for i, name in enumerate(names):
            pts = sorted((e for e in summary if e["reward_model"] == name and e["n_train_pairs"] == size),
                         key=lambda e: e["n"])
            fig.add_trace(go.Scatter(
                x=[e["n"] for e in pts], y=[e["accuracy"] for e in pts],
                error_y={"type": "data", "array": [e["std"] for e in pts]}, mode="lines+markers", name=name,
                legendgroup=name, showlegend=col == 1, line={"color": palette[i % len(palette)]}), row=1, col=col)
        for key, label in (("oracle", "oracle (any of n right)"), ("random", "random pick")):
            fig.add_trace(go.Scatter(x=ns, y=[r[key] for r in references], mode="lines", name=label,
                                     legendgroup=key, showlegend=col == 1,
                                     line={"color": "#7f7f7f", "dash": "dash" if key == "oracle" else "dot"}),
                          row=1, col=col)
    fig.update_xaxes(type="log", title_text="n (samples the reward model picks from)")
    fig.update_yaxes(title_text="accuracy of the pick", row=1, col=1)
    fig.update_layout(height=420, width=max(500, 420 * len(sizes)), title="Best-of-n by reward")
    return fig


def results_table(summary: list[dict]) -> go.Figure:
    """A table figure: one row per reward model, mean ± std over seeds of held-out pairwise accuracy and of
    AUROC per split."""
    splits = list(summary[0]["auroc"]) if summary else []
    header = ["reward model", "seeds", "pairwise acc"] + [f"AUROC {s}" for s in splits]

    def fmt(v):
        return f"{v['mean']:.3f} ± {v['std']:.3f}"

    cols = [[e["reward_model"] for e in summary], [e["n_seeds"] for e in summary],
            [fmt(e["pairwise_accuracy"]) for e in summary]]
    cols += [[fmt(e["auroc"][s]) for e in summary] for s in splits]
    fig = go.Figure(go.Table(header={"values": header}, cells={"values": cols}))
    fig.update_layout(title="Held-out pairwise accuracy and AUROC per split (mean ± std over seeds)",
                      height=120 + 40 * len(summary), width=1000)
    return fig


def save_figure(fig: go.Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.html` (plotly.js in a shared file beside it, so it opens offline) and `<stem>.json`."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory")
    js = atomic_write_text(stem.with_suffix(".json"), fig.to_json())
    return html, js


# ------------------------------------------------------------------------------------------------ colours

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
"""one colour per line (reward model), in order"""


def _rgba(hex_color: str, alpha: float) -> str:
    """`#rrggbb` with an opacity, as plotly's `rgba(r,g,b,a)` (for bands around a line of that colour)."""
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


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


def qvalue_traces(q, correct, first_error_token, threshold: float, skip: int, paper_threshold: float | None = None,
                  n: int = 8, seed: int = 0) -> go.Figure:
    """Per-token Q-values of `n` correct (green) and `n` incorrect (red) samples drawn at random. q: (S, L) with NaN
    past each end; first_error_token: per sample, the response token index (the column of `q`) holding the first
    wrong step, or None / a negative number for none; a cross marks it. It is a TOKEN index: map a verifier's
    character offset with `qvalues.response_token_index` first (`filtering.SampleSet.first_error_token` does).
    Lines: the chosen threshold, the paper's, and the first `skip` tokens that never prune."""
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


# ------------------------------------------------------------------------------------------------ 04_steering

STEERING_COLORS = {"plain": "#7f7f7f", "best_of_n": "#1f77b4", "best_of_n_goal": "#17becf",
                   "beam_policy_only": "#ff7f0e", "guided": "#d62728", "guided_oracle": "#2ca02c"}


def _method_label(e: dict) -> str:
    return " / ".join(x for x in (e["method"], e["reward_model"], e["target"]) if x)


def steering_rates(summary: list[dict], attributes: list[str]) -> go.Figure:
    """One panel per attribute: its rate under every method (plain sampling, best-of-N by reward and by goal,
    beam search on the policy alone, guided decoding per reward model and target), mean with sample std over
    seeds as error bars; colour = method family."""
    fig = make_subplots(rows=len(attributes), cols=1, subplot_titles=[f"share {a}" for a in attributes],
                        shared_xaxes=True, vertical_spacing=0.08)
    for row, attr in enumerate(attributes, 1):
        for method, color in STEERING_COLORS.items():
            es = [e for e in summary if e["method"] == method and f"rate_{attr}" in e]
            if not es:
                continue
            fig.add_trace(go.Bar(x=[_method_label(e) for e in es], y=[e[f"rate_{attr}"]["mean"] for e in es],
                                 error_y={"type": "data", "array": [e[f"rate_{attr}"]["std"] for e in es]},
                                 name=method, legendgroup=method, showlegend=row == 1, marker_color=color),
                          row=row, col=1)
        fig.update_yaxes(range=[0, 1.05], row=row, col=1)
    fig.update_layout(height=280 * len(attributes) + 120, width=1000, barmode="group",
                      title="Attribute rates by decoding method (mean ± std over seeds)")
    return fig


def steering_compute(summary: list[dict]) -> go.Figure:
    """The compute each method used per prompt: policy tokens sampled, tokens run through the reward model, and
    wall-clock seconds (mean ± std over seeds)."""
    panels = (("policy_tokens", "policy tokens sampled / prompt"),
              ("policy_tokens_processed", "policy tokens processed / prompt"),
              ("rm_tokens", "reward-model tokens / prompt"), ("seconds_per_prompt", "seconds / prompt"))
    # summaries written before the processed-token count existed have no such entry
    panels = tuple((k, t) for k, t in panels if all(k in e for e in summary))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    for col, (key, _) in enumerate(panels, 1):
        for method, color in STEERING_COLORS.items():
            es = [e for e in summary if e["method"] == method]
            if not es:
                continue
            fig.add_trace(go.Bar(x=[_method_label(e) for e in es], y=[e[key]["mean"] for e in es],
                                 error_y={"type": "data", "array": [e[key]["std"] for e in es]}, name=method,
                                 legendgroup=method, showlegend=col == 1, marker_color=color), row=1, col=col)
    fig.update_layout(height=480, width=350 * len(panels) + 200, title="Compute per prompt by decoding method")
    return fig


def steering_gains(gains: list[dict]) -> go.Figure:
    """Gain of guided decoding on its target's aim attribute (left) and, when the judge scores it, on correctness
    (right) over each baseline, in points, mean ± std of the per-seed differences; one group per (reward model,
    target)."""
    panels = [("aim", "gain on the target's aim (points)")]
    if gains and all("correct" in e for e in gains):
        panels.append(("correct", "gain on correctness (points)"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels], shared_yaxes=False)
    baselines = list(dict.fromkeys(e["baseline"] for e in gains))
    for col, (which, _) in enumerate(panels, 1):
        for b in baselines:
            es = [e for e in gains if e["baseline"] == b]
            ys = [e[e["aim"] if which == "aim" else "correct"]["gain_points"] for e in es]
            fig.add_trace(go.Bar(x=[f"{e['reward_model']} → {e['target']} ({e['aim']})" for e in es],
                                 y=[y["mean"] for y in ys], error_y={"type": "data", "array": [y["std"] for y in ys]},
                                 name=f"over {b}", legendgroup=b, showlegend=col == 1,
                                 marker_color=STEERING_COLORS.get(b, "#333333")), row=1, col=col)
    fig.add_hline(y=0, line_dash="dash")
    fig.update_layout(barmode="group", height=450, width=1300,
                      title="Guided decoding against each baseline (paired by seed)")
    return fig
