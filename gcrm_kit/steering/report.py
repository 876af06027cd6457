"""What the comparison reports: the result (`SteeringResult`), its summary over seeds, the notebook's tables
(attributes, diagnostics, rates and compute, gains), metrics.json (`write_metrics`, the one writer) and the
figures saved in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation import summarise_over_seeds
from ..plots import save_figure
from ..toyworld.attributes import ATTRIBUTES
from .figures import steering_compute, steering_gains, steering_rates
from .judges import attribute_rates, in_set
from .labels import label_table
from .setup import SteeringSetup


@dataclass
class SteeringResult:
    """Rows (one per method, reward model, target and seed), their summary over seeds, the gains of guided
    decoding, prototype diagnostics, and the decoded responses (method key -> seed -> responses)."""

    run_dir: Path
    rows: list[dict]
    summary: list[dict]
    gains: list[dict]
    diagnostics: dict
    best_of_n: dict[int, int]
    responses: dict = field(default_factory=dict)
    cache_check: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)
    """method -> why it did not run (`guided_prm` without a process reward model)"""


METHOD_ORDER = ("plain", "best_of_n", "best_of_n_goal", "beam_policy_only", "guided", "guided_oracle",
                "guided_prm")

SUMMARISED = ("policy_tokens", "policy_tokens_processed", "rm_tokens", "seconds", "seconds_per_prompt", "n",
              "truncated", "final_goal")
"""the figures of a result row summarised over seeds, besides every attribute rate (`rate_<attribute>`)"""


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds of every rate and compute figure, per (method, reward model, target), in
    METHOD_ORDER (`evaluation.summarise_over_seeds`)."""
    metrics = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("rate_") or k in SUMMARISED]
    entries = summarise_over_seeds(rows, ("method", "reward_model", "target"), metrics)
    return sorted(entries, key=lambda e: METHOD_ORDER.index(e["method"]) if e["method"] in METHOD_ORDER
                  else len(METHOD_ORDER))


def attribute_overview(p, setup: SteeringSetup, labels: list[dict] | None = None):
    """The judge's attributes: their description (toy attributes) and their share among the labelled examples,
    with how many examples each prototype is built from (pandas DataFrame). `labels`: `label_table(p, setup)`
    (taken from the run's judge cache when not given)."""
    import pandas as pd

    judged = label_table(p, setup) if labels is None else labels
    rates = attribute_rates(judged)
    protos = {s.attribute: [] for s in p.prototypes}
    for s in p.prototypes:
        n = sum(in_set(j, s) for j in judged)
        protos[s.attribute].append(f"{s.name} ({s.attribute} = {s.value}: {n} examples)")
    if setup.labels is None:
        return pd.DataFrame([{"attribute": k, "description": ATTRIBUTES[k].description if k in ATTRIBUTES else "",
                              "share of labelled examples": round(v, 3), "prototypes": ", ".join(protos.get(k, []))}
                             for k, v in rates.items()]).set_index("attribute")
    d = p.data
    rated = {k: sum(j[k] is not None for j in judged) for k in rates}
    return pd.DataFrame([{"attribute": k, "description": HELPSTEER_DESCRIPTIONS.get(k, ""),
                          f"share rated >= {d.rating_high} among those rated >= {d.rating_high} or <= {d.rating_low}":
                          round(v, 3) if v == v else v, "examples rated high or low": rated[k],
                          "prototypes": ", ".join(protos.get(k, []))}
                         for k, v in rates.items()]).set_index("attribute")


HELPSTEER_DESCRIPTIONS = {
    "helpfulness": "HelpSteer rating 0-4: overall helpfulness of the response to the prompt",
    "correctness": "HelpSteer rating 0-4: inclusion of all pertinent facts without errors",
    "coherence": "HelpSteer rating 0-4: consistency and clarity of expression",
    "complexity": "HelpSteer rating 0-4: intellectual depth needed to write the response (basic language to "
                  "domain expertise)",
    "verbosity": "HelpSteer rating 0-4: amount of detail relative to what the prompt asks",
}


def diagnostics_table(diagnostics: dict):
    """Prototype diagnostics (from `prototype_diagnostics`, one dict per reward model or a dict of them) as a
    DataFrame: AUROC of each goal for its aim at the EOS and at the step ends inside the response."""
    import pandas as pd

    if diagnostics and "aim" in next(iter(diagnostics.values())):
        diagnostics = {"": diagnostics}
    rows = [{"reward model": m, "goal": t, "aim": d.get("labels") or d["aim"],
             "AUROC at the EOS": round(d["final_auroc"], 3), "AUROC at step ends": round(d["steps_auroc"], 3)}
            for m, ds in diagnostics.items() for t, d in ds.items()]
    return pd.DataFrame(rows)


def has_attribute(summary_or_rows: list[dict], attribute: str) -> bool:
    """Whether the judge scored `attribute` in every entry (summary entries or rows)."""
    return bool(summary_or_rows) and all(f"rate_{attribute}" in e for e in summary_or_rows)


def reported_attributes(p, result: SteeringResult) -> list[str]:
    """The attributes the comparison reports: every target's aim (from the params), then correctness when the
    judge scores `correct` (and the proxy reward with the `rm_proxy` judge); only those the judge scored."""
    return _scored(result, [t.aim for t in p.targets] + ["correct", "proxy_reward"])


def _scored(result: SteeringResult, wanted: list[str]) -> list[str]:
    """`wanted` without repeats, keeping only the attributes the judge scored."""
    return [a for a in dict.fromkeys(wanted) if has_attribute(result.summary, a)]


def results_table(result: SteeringResult, attributes: tuple[str, ...] | list[str] | None = None):
    """Mean ± std over seeds of attribute rates and compute per method (pandas DataFrame): policy tokens sampled
    per prompt (what best-of-N's N is matched on), policy tokens processed (sampled + prompt/prefix tokens each
    `generate` call encoded), reward-model tokens and seconds. `attributes`: default every one the judge scored."""
    import pandas as pd

    rows = []
    for e in result.summary:
        attrs = attributes or tuple(k[5:] for k in e if k.startswith("rate_"))
        row = {"method": e["method"], "reward model": e["reward_model"], "target": e["target"]}
        for a in attrs:
            v = e[f"rate_{a}"]
            row[a] = f"{v['mean']:.3f} ± {v['std']:.3f}"
        row["policy tok/prompt"] = f"{e['policy_tokens']['mean']:.1f}"
        if "policy_tokens_processed" in e:
            row["policy tok processed/prompt"] = f"{e['policy_tokens_processed']['mean']:.1f}"
        row["RM tok/prompt"] = f"{e['rm_tokens']['mean']:.1f}"
        row["seconds"] = f"{e['seconds']['mean']:.1f} ± {e['seconds']['std']:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def gains_table(result: SteeringResult):
    """Gains of guided decoding over each baseline on the target's aim attribute and on correctness (when the judge
    scores `correct`), in points (mean ± std of the per-seed differences) and relative (%), with compute ratios
    (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for e in result.gains:
        a = e[e["aim"]]
        row = {
            "reward model": e["reward_model"], "target": e["target"], "over": e["baseline"], "aim": e["aim"],
            "aim: guided": round(a["guided"], 3), "aim: baseline": round(a["baseline"], 3),
            "aim gain (pts)": f"{a['gain_points']['mean']:+.1f} ± {a['gain_points']['std']:.1f}",
            "aim gain (%)": f"{a['gain_relative_pct']['mean']:+.1f}"}
        if "correct" in e:
            c = e["correct"]
            row["correct gain (pts)"] = f"{c['gain_points']['mean']:+.1f} ± {c['gain_points']['std']:.1f}"
        row["policy tokens ×"] = round(e["policy_tokens_ratio"], 2)
        if "policy_tokens_processed_ratio" in e:
            row["policy tokens processed ×"] = round(e["policy_tokens_processed_ratio"], 2)
        row["total tokens ×"] = round(e["total_tokens_ratio"], 2)
        row["seconds ×"] = round(e["seconds_ratio"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def write_metrics(p, run, setup: SteeringSetup, result: SteeringResult, labels: dict) -> dict:
    """Write run/metrics.json: the params' identity, the RM run and what each reward model was trained to do, the
    judge (and what its scores are), the best-of-N sizes, the prototype label counts (`labels`, from
    `label_counts`), the diagnostics, the cache check, every row, the summary, the gains and the methods left out
    with why. Returns the dict."""
    judge = setup.judge(p.judge).judge
    metrics = {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed, "rm_run": str(setup.rm_run_dir),
               "kind": setup.kind, "judge": {"name": p.judge, "note": getattr(judge, "note", "")},
               "n_prompts": len(setup.prompts), "seeds": setup.seeds, "best_of_n": result.best_of_n,
               "prototype_labels": labels, "prototype_diagnostics": result.diagnostics,
               "cache_check": result.cache_check, "rows": result.rows, "summary": result.summary,
               "gains": result.gains, "reward_model_objectives": setup.objectives, "left_out": result.left_out}
    run.write_json("metrics.json", metrics)
    return metrics


def save_figures(run, result: SteeringResult, aims: list[str]) -> dict:
    """The comparison as plotly figures in run/figures/: attribute rates per method (the `aims`, then correctness
    when the judge scores it), the compute each used, and the gains of guided decoding (with a correctness panel
    when the judge scores `correct`)."""
    figs = {"steering_rates": steering_rates(result.summary, _scored(result, list(aims) + ["correct"])),
            "steering_compute": steering_compute(result.summary)}
    if result.gains:
        figs["steering_gains"] = steering_gains(result.gains)
    for name, fig in figs.items():
        save_figure(fig, run.path("figures", name))
    return figs
