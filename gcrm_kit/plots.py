"""Plotly figures for every notebook. Notebooks call these; no figure is drawn by code living in a notebook."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .io import atomic_write_text


def save_figure(fig: go.Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.html` (plotly.js in a shared file beside it, so it opens offline) and `<stem>.json`."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory")
    js = atomic_write_text(stem.with_suffix(".json"), fig.to_json())
    return html, js


# ------------------------------------------------------------------------------------------------ notebook 02

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def _scorer_label(scorer: str) -> str:
    return "reward head" if scorer == "head" else f"Q-value (cos to '{scorer}')"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def partial_auroc(data: dict, scorers: list[str]) -> go.Figure:
    """AUROC for final correctness vs share of the response read, one panel per scorer, one line per reward
    model (mean over seeds) with its 95% bootstrap band. `data`: `representation.partial_auroc`'s."""
    fig = make_subplots(rows=1, cols=len(scorers), subplot_titles=[_scorer_label(s) for s in scorers],
                        shared_yaxes=True)
    x = [100 * f for f in data["fractions"]]
    for k, (rm, curves) in enumerate(data["curves"].items()):
        color = PALETTE[k % len(PALETTE)]
        n_seeds = len(curves[scorers[0]]["per_seed"])
        for col, scorer in enumerate(scorers, 1):
            c = curves[scorer]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=c["ci_high"] + c["ci_low"][::-1], fill="toself",
                                     fillcolor=_rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
                                     showlegend=False, legendgroup=rm), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=c["mean"], mode="lines+markers", name=f"{rm} (n={n_seeds} seeds)",
                                     line={"color": color}, legendgroup=rm, showlegend=col == 1,
                                     error_y={"type": "data", "array": c["seed_std"], "thickness": 1, "width": 2},
                                     hovertemplate="%{x:.0f}%: AUROC %{y:.3f}<extra>" + rm + "</extra>"),
                          row=1, col=col)
    fig.add_hline(y=0.5, line_dash="dash", line_color="gray")
    fig.update_xaxes(title_text="share of the response read (%)")
    fig.update_yaxes(title_text="AUROC (final correctness)", col=1)
    fig.update_layout(height=420, width=470 * len(scorers), title=(
        f"Partial-sequence AUROC (n={data['n']} solutions, {data['n_correct']} correct; band: 95% bootstrap "
        "interval of the seed mean; bars: std over seeds)"))
    return fig


def mean_curves(data: dict) -> go.Figure:
    """Mean value along solutions by share of the response read: solid correct, dashed incorrect, one colour
    per reward model; the band is the std over seeds. `data`: `representation.mean_curves`'s."""
    fig = go.Figure()
    x = [100 * f for f in data["fractions"]]
    for k, (rm, curves) in enumerate(data["curves"].items()):
        color = PALETTE[k % len(PALETTE)]
        for name, dash in (("correct", "solid"), ("incorrect", "dash")):
            c = curves[name]
            hi = [m + s for m, s in zip(c["mean"], c["seed_std"])]
            lo = [m - s for m, s in zip(c["mean"], c["seed_std"])]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", fillcolor=_rgba(color, 0.12),
                                     line={"width": 0}, hoverinfo="skip", showlegend=False))
            fig.add_trace(go.Scatter(x=x, y=c["mean"], mode="lines", name=f"{rm}: {name}",
                                     line={"color": color, "dash": dash}))
    fig.update_layout(height=420, width=800, xaxis_title="share of the response read (%)",
                      yaxis_title=_scorer_label(data["scorer"]),
                      title="Mean Q-value along solutions: correct (solid) vs incorrect (dashed)")
    return fig


def example_curves(data: dict) -> go.Figure:
    """One panel per example solution: the value after each token, one line per reward model; a red dotted line
    marks the first wrong step's first token. `data`: `representation.example_curves`'s."""
    ex = data["examples"]
    if not ex:
        return go.Figure().update_layout(title="no examples")
    titles = [f"#{e['index']} {'correct' if e['is_correct'] else 'incorrect'}: {e['prompt']} → {e['response']}"
              for e in ex]
    fig = make_subplots(rows=len(ex), cols=1, subplot_titles=titles, vertical_spacing=0.35 / len(ex))
    for r, e in enumerate(ex, 1):
        xs = list(range(len(e["tokens"])))
        for k, (rm, vals) in enumerate(e["values"].items()):
            fig.add_trace(go.Scatter(x=xs, y=vals, mode="lines+markers", name=rm, legendgroup=rm,
                                     showlegend=r == 1, line={"color": PALETTE[k % len(PALETTE)]},
                                     text=e["tokens"], hovertemplate="%{text}: %{y:.3f}<extra>" + rm + "</extra>"),
                          row=r, col=1)
        fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=e["tokens"], tickangle=0, row=r, col=1)
        if e["error_column"] >= 1:
            fig.add_vline(x=e["error_column"], line_dash="dot", line_color="red", row=r, col=1)
    fig.update_yaxes(title_text="Q")
    fig.update_layout(height=230 * len(ex) + 80, width=900, title=(
        f"{_scorer_label(data['scorer'])} after each token (red dotted: first token of the first wrong step)"))
    return fig


def error_localisation(data: dict, scorers: list[str]) -> go.Figure:
    """Left: localisation score (largest drop within the window of the first wrong step) per reward model and
    scorer, mean with std over seeds; a black tick marks chance, a grey diamond the control (correct solutions at
    matched positions). Right: the mean curve aligned at the first wrong step (solid, incorrect solutions) and at
    the matched positions of correct ones (dotted), relative to the value just before.
    `data`: `representation.error_localisation`'s."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], subplot_titles=(
        f"largest drop within [{data['window'][0]}, {data['window'][1]}] tokens of the first wrong step",
        "mean change around the first wrong step (Q-value)"))
    rms = list(data["scores"])
    for k, scorer in enumerate(scorers):
        fig.add_trace(go.Bar(x=rms, y=[data["scores"][rm][scorer]["hit_rate"] for rm in rms],
                             error_y={"type": "data", "array": [data["scores"][rm][scorer]["hit_rate_std"]
                                                                for rm in rms]},
                             name=_scorer_label(scorer), marker_color=PALETTE[(k + 2) % len(PALETTE)],
                             offsetgroup=str(k)), row=1, col=1)
        fig.add_trace(go.Scatter(x=rms, y=[data["scores"][rm][scorer]["chance"] for rm in rms], mode="markers",
                                 marker={"symbol": "line-ew-open", "size": 30, "color": "black"},
                                 name="chance", showlegend=k == 0, offsetgroup=str(k)), row=1, col=1)
        fig.add_trace(go.Scatter(x=rms, y=[data["scores"][rm][scorer]["control_hit_rate"] for rm in rms],
                                 mode="markers", marker={"symbol": "diamond", "size": 9, "color": "gray"},
                                 name="control: correct solutions, matched positions", showlegend=k == 0,
                                 offsetgroup=str(k)), row=1, col=1)
    q = scorers[0]
    for k, rm in enumerate(rms):
        a = data["aligned"][rm][q]
        color = PALETTE[k % len(PALETTE)]
        fig.add_trace(go.Scatter(x=data["offsets"], y=a["incorrect"], mode="lines+markers",
                                 name=f"{rm}: incorrect, at first error", line={"color": color}), row=1, col=2)
        fig.add_trace(go.Scatter(x=data["offsets"], y=a["correct"], mode="lines",
                                 name=f"{rm}: correct, matched positions", line={"color": color, "dash": "dot"}),
                      row=1, col=2)
    fig.add_vrect(x0=data["window"][0] - 0.5, x1=data["window"][1] + 0.5, fillcolor="red", opacity=0.08,
                  line_width=0, row=1, col=2)
    fig.update_yaxes(title_text="share of incorrect solutions", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="Q(t) − Q(before the step)", row=1, col=2)
    fig.update_xaxes(title_text="tokens from the first wrong step's first token", row=1, col=2)
    fig.update_layout(barmode="group", height=430, width=1150,
                      title=f"Does the curve drop at the first wrong step? (n={data['n_incorrect_located']} "
                            "incorrect solutions with a located first error)")
    return fig


def reward_correlations(data: dict, scorers: list[str]) -> go.Figure:
    """Pearson correlation between the value after reading a share of the response and the final reward, grouped
    by share, one bar per reward model and scorer (std over seeds). `data`: `representation.reward_correlations`'s."""
    fig = go.Figure()
    x = [f"{int(100 * f)}%" for f in data["fractions"]]
    k = 0
    for rm, by in data["correlations"].items():
        for scorer in scorers:
            c = by[scorer]["pearson"]
            fig.add_trace(go.Bar(x=x, y=c["mean"], error_y={"type": "data", "array": c["seed_std"]},
                                 name=f"{rm} · {_scorer_label(scorer)}", marker_color=PALETTE[k % len(PALETTE)]))
            k += 1
    fig.update_layout(barmode="group", height=420, width=900, yaxis={"title": "Pearson r with the final reward",
                                                                      "range": [-1, 1]},
                      xaxis_title="share of the response read",
                      title="Correlation of partial-sequence values with the final reward (paper, Table 13)")
    return fig


def projection(data: dict) -> go.Figure:
    """2-D map of token states: one row per reward model, columns coloured by correctness of the solution,
    relative position of the token, and its Q-value; the prototype is a black star. `data`:
    `representation.projections`'s."""
    rms = list(data["maps"])
    cols = ("correct", "position", "value")
    titles = [f"{rm}: {t}" for rm in rms for t in ("solution correct?", "position in response", "Q-value")]
    fig = make_subplots(rows=len(rms), cols=3, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.12 if len(rms) > 1 else 0.1)
    for r, rm in enumerate(rms, 1):
        m = data["maps"][rm]
        text = [f"#{s} '{t}'" for s, t in zip(m["sequence"], m["token"])]
        for c, key in enumerate(cols, 1):
            if key == "correct":
                for val, name, color in ((True, "correct", "#2ca02c"), (False, "incorrect", "#d62728")):
                    idx = [i for i, v in enumerate(m["correct"]) if v == val]
                    fig.add_trace(go.Scattergl(
                        x=[m["x"][i] for i in idx], y=[m["y"][i] for i in idx], mode="markers", name=name,
                        marker={"size": 4, "color": color, "opacity": 0.6}, text=[text[i] for i in idx],
                        hoverinfo="text", showlegend=r == 1, legendgroup=name), row=r, col=c)
            else:
                bar_y = 1 - (r - 0.5) / len(rms)
                fig.add_trace(go.Scattergl(
                    x=m["x"], y=m["y"], mode="markers", showlegend=False, text=text, hoverinfo="text",
                    marker={"size": 4, "color": m[key], "colorscale": "Viridis" if key == "position" else "RdYlGn",
                            "opacity": 0.7, "colorbar": {"len": 0.8 / len(rms), "y": bar_y,
                                                         "x": 0.64 if key == "position" else 1.0,
                                                         "thickness": 10}}), row=r, col=c)
            if m.get("prototype_xy"):
                fig.add_trace(go.Scatter(x=[m["prototype_xy"][0]], y=[m["prototype_xy"][1]], mode="markers",
                                         marker={"symbol": "star", "size": 14, "color": "black"},
                                         name="prototype", showlegend=r == 1 and c == 1, legendgroup="prototype"),
                              row=r, col=c)
    fig.update_layout(height=380 * len(rms) + 60, width=1250, title=(
        f"Token states of {data['n_sequences']} solutions, {data['method'].upper()} "
        f"(star: the '{data['scorer']}' prototype)"))
    return fig


class TokenShading:
    """Text with each token shaded by a value, one row per (model, scorer): displays inline in JupyterLab
    (`_repr_html_`), and `.page()` gives a stand-alone HTML page. Hover a token for its exact value."""

    def __init__(self, html: str, title: str = ""):
        self.html, self.title = html, title

    def _repr_html_(self) -> str:
        return self.html

    def page(self) -> str:
        import html as _html

        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(self.title)}</title>"
                f"</head><body>{self.html}</body></html>")


def _shade(value: float, vmin: float, vmax: float) -> str:
    """Red (low) - white (middle) - green (high), on [vmin, vmax]."""
    if value != value:
        return "#eeeeee"
    t = 0.5 if vmax <= vmin else min(max((value - vmin) / (vmax - vmin), 0.0), 1.0)
    if t < 0.5:
        a = 1 - 2 * t
        r, g, b = 255, int(255 - a * (255 - 120)), int(255 - a * (255 - 120))
    else:
        a = 2 * t - 1
        r, g, b = int(255 - a * (255 - 110)), int(255 - a * (255 - 200)), int(255 - a * (255 - 110))
    return f"#{r:02x}{g:02x}{b:02x}"


def token_shading(tokens: list[str], rows: list[dict], title: str = "", mark: int | None = None) -> TokenShading:
    """Shade `tokens` once per row: each row is {label, values (one per token), vmin, vmax}; red is low, green
    high on the row's [vmin, vmax]. `mark` underlines the token at that index (e.g. the first wrong step)."""
    import html as _html

    parts = [f"<div style='font-family:monospace;font-size:14px;line-height:1.9'>"
             f"<div style='font-weight:bold;margin-bottom:4px'>{_html.escape(title)}</div><table>"]
    for row in rows:
        cells = []
        for j, (tok, v) in enumerate(zip(tokens, row["values"])):
            style = f"background:{_shade(v, row['vmin'], row['vmax'])};padding:1px 1px;border-radius:2px"
            if mark is not None and j == mark:
                style += ";border-bottom:3px solid #d62728"
            shown = _html.escape(tok if tok.strip() else "␣")
            cells.append(f"<span title='{_html.escape(tok)}: {v:.4f}' style='{style}'>{shown}</span>")
        parts.append(f"<tr><td style='padding-right:12px;color:#555;white-space:nowrap'>"
                     f"{_html.escape(row['label'])}</td><td>{''.join(cells)}</td>"
                     f"<td style='padding-left:12px;color:#999;font-size:11px'>[{row['vmin']:.3f} … "
                     f"{row['vmax']:.3f}]</td></tr>")
    parts.append("</table></div>")
    return TokenShading("".join(parts), title)


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
