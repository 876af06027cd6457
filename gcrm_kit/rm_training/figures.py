"""Figures of notebook 01 (plotly): training curves, AUROC by split, AUROC against the number of training pairs,
best-of-n accuracy and the results table. Saved by `plots.save_figure` (see `report.save_figures`)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAINING_METRICS = ("bt_loss", "contrastive_loss", "grm_loss", "accuracy", "reward_margin", "step_accuracy")


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
