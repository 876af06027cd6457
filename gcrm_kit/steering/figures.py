"""Notebook 04's figures: attribute rates per decoding method, the compute each used, and the gains of guided
decoding over each baseline (plotly figures; `report.save_figures` writes them into the run folder).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


STEERING_COLORS = {"plain": "#7f7f7f", "best_of_n": "#1f77b4", "best_of_n_goal": "#17becf",
                   "beam_policy_only": "#ff7f0e", "guided": "#d62728", "guided_oracle": "#2ca02c",
                   "guided_prm": "#9467bd"}
"""one colour per method family, shared by every figure of the comparison"""


def _method_label(e: dict) -> str:
    """A summary entry's bar label: method / reward model / target (the empty ones left out)."""
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
