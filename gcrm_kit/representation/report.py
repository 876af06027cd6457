"""What notebook 02 leaves in its run folder: every analysis's numbers (analyses/) and figure (figures/), the token
shadings, and the headline numbers in metrics.json (`write_metrics`, the one writer); and the side-by-side table
of the reward models that the notebook ends with."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text, to_jsonable
from ..params import RepresentationParams
from ..plots import save_figure
from ..runs import Run
from .analysis import HEAD, Analysis
from .curves import at_fraction
from .figures import TokenShading
from .inputs import RepresentationInputs, inputs_summary
from .readout import Readout


def save_analyses(run: Run, analyses: dict[str, Analysis]) -> list[Path]:
    """Each analysis's figure as figures/<name>.html and .json, its data as analyses/<name>.json."""
    paths = []
    for name, a in analyses.items():
        run.write_json(f"analyses/{name}.json", a.data)
        if a.figure is not None:
            paths += list(save_figure(a.figure, run.path("figures", name)))
    return paths


def save_token_views(run: Run, views: dict[str, TokenShading]) -> list[Path]:
    """Token shadings as stand-alone HTML files figures/<name>.html."""
    return [atomic_write_text(run.path("figures", f"{name}.html"), v.page()) for name, v in views.items()]


def summarise(p: RepresentationParams, inputs: RepresentationInputs, readout: Readout,
              analyses: dict[str, Analysis]) -> dict:
    """The headline numbers (metrics.json): partial AUROC at every fraction for every scorer, localisation vs
    chance, correlations, the prototype check, the run's inputs and the device the models ran on; when measured,
    ProcessBench's scores of the per-step readers (`processbench`) and the process reward models' partial AUROC
    (`prm_partial_auroc`, {PRM: {fraction: ...}}) and localisation (`prm_localisation`)."""
    pa = analyses["partial_auroc"].data
    summary = {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed,
               "q_prototype": p.q_prototype, "inputs": inputs_summary(inputs, p), "device": readout.device,
               "prototype_check_max_abs_diff": readout.prototype_check,
               "partial_auroc": {rm: {sc: {f"{f:.1f}": at_fraction(pa, rm, sc, f) for f in pa["fractions"]}
                                      for sc in c} for rm, c in pa["curves"].items()},
               "error_localisation": analyses["error_localisation"].data["scores"],
               "reward_correlations": analyses["reward_correlations"].data["correlations"],
               "correlation_fractions": p.correlation_fractions,
               "projections": {k: {rm: {kk: vv for kk, vv in m.items() if kk in ("explained_variance_ratio",
                                                                                  "perplexity")}
                                    for rm, m in a.data.get("maps", {}).items()} or a.data
                               for k, a in analyses.items() if k.startswith("projection_")}}
    if "processbench" in analyses:  # per-step readers (steps.py): ProcessBench's scores, localisation beside them
        pb = analyses["processbench"].data
        summary["processbench"] = {**{k: v for k, v in pb.items() if k != "readers"}, "readers": {
            name: {k: e[k] for k in ("kind", "f1", "acc_erroneous", "acc_correct", "localisation") if k in e}
            for name, e in pb["readers"].items()}}
    if "prm_partial_auroc" in analyses:
        pa = analyses["prm_partial_auroc"].data
        summary["prm_partial_auroc"] = {rm: {f"{f:.1f}": at_fraction(pa, rm, HEAD, f) for f in pa["fractions"]}
                                        for rm in pa["curves"]}
    if "prm_localisation" in analyses:
        summary["prm_localisation"] = {rm: by[HEAD] for rm, by in analyses["prm_localisation"].data["scores"].items()}
    return to_jsonable(summary)


def write_metrics(run: Run, p: RepresentationParams, inputs: RepresentationInputs, readout: Readout,
                  analyses: dict[str, Analysis]) -> dict:
    """Write `summarise`'s headline numbers to <run>/metrics.json (the last file of a finished run) and return
    them. `analyses` needs `partial_auroc`, `error_localisation` and `reward_correlations`."""
    metrics = summarise(p, inputs, readout, analyses)
    run.write_json("metrics.json", metrics)
    return metrics


def comparison_table(metrics: dict, fractions: tuple[float, ...] = (0.2, 0.5, 1.0)):
    """The reward models side by side (pandas DataFrame, one column each, headed by its role when metrics.json
    records it): partial AUROC at `fractions` by Q-value and reward head, localisation vs chance, and the
    Q/reward Pearson correlation at each correlation fraction; mean ± std over seeds, [95% bootstrap interval] for
    AUROC."""
    import pandas as pd

    q = metrics["q_prototype"]
    roles = metrics["inputs"].get("roles", {})
    cols = {}
    for rm, by in metrics["partial_auroc"].items():
        col = {"role": roles.get(rm, "")} if roles else {}
        col["AUROC reward head @ 100%, per seed"] = ", ".join(f"{v:.3f}" for v in by[HEAD]["1.0"]["per_seed"])
        for sc, label in ((q, f"Q ({q})"), (HEAD, "reward head")):
            for f in fractions:
                e = by[sc][f"{f:.1f}"]
                col[f"AUROC {label} @ {int(f * 100)}%"] = (f"{e['mean']:.3f} ± {e['seed_std']:.3f} "
                                                           f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]")
        for sc, label in ((q, f"Q ({q})"), (HEAD, "reward head")):
            e = metrics["error_localisation"][rm][sc]
            col[f"localisation {label} (chance; control)"] = (
                f"{e['hit_rate']:.3f} ± {e['hit_rate_std']:.3f} ({e['chance']:.3f}; {e['control_hit_rate']:.3f})")
        c = metrics["reward_correlations"][rm][q]["pearson"]
        for k, f in enumerate(metrics["correlation_fractions"]):
            col[f"Pearson r(Q @ {int(f * 100)}%, reward)"] = f"{c['mean'][k]:.3f} ± {c['seed_std'][k]:.3f}"
        cols[rm] = col
    return pd.DataFrame(cols)
