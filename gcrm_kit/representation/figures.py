"""Plotly figures of notebook 02 (02_representation_analysis), drawn from the JSON-able numbers each analysis
returns, and the token shading (HTML) of one solution. The analyses call these; no figure is drawn in the
notebook."""

from __future__ import annotations

import html as _html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots import PALETTE, _rgba


def _scorer_label(scorer: str) -> str:
    return "reward head" if scorer == "head" else f"Q-value (cos to '{scorer}')"


def partial_auroc(data: dict, scorers: list[str]) -> go.Figure:
    """AUROC for final correctness vs share of the response read, one panel per scorer, one line per reward
    model (mean over seeds) with its 95% bootstrap band. `data`: `gcrm_kit.representation.partial_auroc`'s."""
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
    per reward model; the band is the std over seeds. `data`: `gcrm_kit.representation.mean_curves`'s."""
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
    marks the first wrong step's first token. `data`: `gcrm_kit.representation.example_curves`'s."""
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
    `data`: `gcrm_kit.representation.error_localisation`'s."""
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
    by share, one bar per reward model and scorer (std over seeds).
    `data`: `gcrm_kit.representation.reward_correlations`'s."""
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
    `gcrm_kit.representation.projections`'s."""
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


def processbench(data: dict) -> go.Figure:
    """ProcessBench's F1 on the test solutions per per-step reader (bars: mean over reward-model seeds, error bars:
    std), with the two accuracies it is the harmonic mean of as markers."""
    names = list(data["readers"])
    fig = go.Figure()
    fig.add_trace(go.Bar(name="F1", x=names, y=[data["readers"][n]["f1"]["mean"] for n in names],
                         error_y={"type": "data", "array": [data["readers"][n]["f1"]["std"] for n in names]}))
    for key, label, symbol in (("acc_erroneous", "accuracy, erroneous", "x"),
                               ("acc_correct", "accuracy, correct", "circle-open")):
        fig.add_trace(go.Scatter(name=label, x=names, y=[data["readers"][n][key]["mean"] for n in names],
                                 mode="markers", marker={"symbol": symbol, "size": 10}))
    fig.update_layout(title=f"First wrong step, ProcessBench's metric ({data['n_test']} test solutions, threshold "
                            f"chosen on {data['n_validation']})", yaxis={"title": "score", "range": [0, 1]},
                      height=420, width=max(600, 110 * len(names)))
    return fig
