"""What notebook 01 reports: per-model rows summarised over seeds, the data-size curve, everything left out by
reason, metrics.json (written by `write_metrics` only), the figures saved into the run folder and the results
table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import evaluation, plots
from ..params import RMTrainingParams
from ..runs import Run
from . import figures
from .screening import merge_skips
from .world import RMData


#: Where the reward is read for the AUROC of correctness -> the key holding it in each row and summary entry: at the
#: EOS the kit appends (where training reads it), or at the response's last token with no EOS appended.
READINGS = {"eos": "auroc", "last_token": "auroc_last_token"}


@dataclass
class RMTrainingResult:
    """What notebook 01 produced: per-model metrics (one row per reward model and seed), the summary over
    seeds, and where everything is."""

    run_dir: Path
    world: RMData
    rows: list[dict]
    summary: list[dict]
    model_dirs: dict[str, list[Path]]
    data_size_curve: list[dict] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    """everything left out, by reason (`skip_counts`)"""
    process_labels: dict = field(default_factory=dict)
    """what labelling the process reward models' steps cost (`prm_labels.LabellingCost`, policy tokens included);
    empty without process reward models"""


def summarise(rows: list[dict], splits: list[str]) -> list[dict]:
    """Mean and sample std over seeds of pairwise accuracy and AUROC per split, one entry per reward model:
    {"reward_model", "n_seeds", "pairwise_accuracy": {"mean", "std"}, "auroc": {split: {"mean", "std", "n"}}}
    (`n`: the seeds whose AUROC is defined), plus "auroc_last_token" shaped like "auroc" when the rows have it (the
    reward read at the response's last token, no EOS; a row without it counts as undefined)."""
    out = evaluation.summarise_over_seeds(rows, ["reward_model"], ["pairwise_accuracy"])
    for entry in out:
        rs = [r for r in rows if r["reward_model"] == entry["reward_model"]]
        # per split by name, not as a dotted metric path: an evaluation set's name may hold a dot
        for key in READINGS.values():
            if key != "auroc" and not any(key in r for r in rs):
                continue
            entry[key] = {}
            for s in splits:
                mean, std, n = evaluation.mean_std([r.get(key, {}).get(s, float("nan")) for r in rs])
                entry[key][s] = {"mean": mean, "std": std, "n": n}
    return out


def data_size_curve(rows: list[dict], splits: list[str]) -> list[dict]:
    """Per reward model and number of training pairs: mean/std over seeds of ID AUROC and of the mean AUROC over
    the out-of-distribution splits (every split but `id`)."""
    out = []
    ood = [s for s in splits if s != "id"]
    keys = dict.fromkeys((r["reward_model"], r["n_train_pairs"]) for r in rows)
    for name, n in keys:
        rs = [r for r in rows if r["reward_model"] == name and r["n_train_pairs"] == n]
        entry = {"reward_model": name, "n_train_pairs": n, "n_seeds": len(rs)}
        for label, vals in (("auroc_id", [r["auroc"].get("id", float("nan")) for r in rs]),
                            ("auroc_ood_mean", [float(np.nanmean([r["auroc"][s] for s in ood])) if ood
                                                else float("nan") for r in rs])):
            mean, std, _ = evaluation.mean_std(vals)
            entry[label] = {"mean": mean, "std": std}
        out.append(entry)
    return out


def skip_counts(world: RMData, model_dirs: list[Path], rows: list[dict]) -> dict:
    """Everything left out of training and evaluation, by reason: what `screen_world` left out of the world
    (`world.pair_stats["skipped"]`, adapter rows under "source") plus what was still left out later, when
    encoding the training pairs (each model's encoding.json) or scoring (each row's `skipped`), taking the largest
    count over models (they see the same data). Shaped {"source": {set: {reason: n}}, "train": {reason: n},
    "heldout": {reason: n}, "eval": {split: {reason: n}}}; toy data leaves everything in."""
    base = world.pair_stats.get("skipped", {})
    later: dict = {"train": {}, "heldout": {}, "eval": {}}

    def take_max(into: dict, counts: dict) -> None:
        for k, v in counts.items():
            into[k] = max(into.get(k, 0), v)

    for d in model_dirs:
        f = Path(d) / "encoding.json"
        if f.is_file():
            take_max(later["train"], json.loads(f.read_text()).get("skipped", {}))
    for r in rows:
        s = r.get("skipped", {})
        take_max(later["heldout"], s.get("heldout", {}))
        for split, counts in s.get("eval", {}).items():
            take_max(later["eval"].setdefault(split, {}), counts)
    out = merge_skips({"source": {}, "train": {}, "heldout": {},
                       "eval": {s: {} for s in world.eval_records}}, base, later)
    return out


def write_metrics(run: Run, p: RMTrainingParams, result: RMTrainingResult, best_of_n: dict | None = None) -> dict:
    """Write the run's metrics.json: the params' identity, the policy's accuracy and attempts, pair counts,
    everything left out, one row per reward model, seed and data size (each with its `objective`), the summary
    over seeds, the data-size curve and, when measured, the world's bounds per split (`world_bounds`: {split:
    `bounds.WorldBounds.as_dict`}, from ``result.world.world_bounds``), the best-of-n curve (`best_of_n`) and, with
    process reward models, what labelling their steps cost (`process_labels`).
    Returns what it wrote."""
    world = result.world
    metrics = {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed,
               "policy_accuracy": world.policy_accuracy, "policy_attempts": world.policy_attempts,
               "pair_stats": world.pair_stats, "skipped": result.skipped, "rows": result.rows,
               "summary": result.summary, "data_size_curve": result.data_size_curve}
    if world.world_bounds:
        metrics["world_bounds"] = {split: b.as_dict() for split, b in world.world_bounds.items()}
    if best_of_n is not None:
        metrics["best_of_n"] = best_of_n
    if result.process_labels:
        metrics["process_labels"] = result.process_labels
    run.write_json("metrics.json", metrics)
    return metrics


def save_figures(run: Run, result: RMTrainingResult) -> dict:
    """Training curves and the AUROC table as plotly figures, saved as HTML and JSON in run/figures/."""
    logs = {d.name: _read_log(d) for ds in result.model_dirs.values() for d in ds}
    figs = {
        "training_curves": figures.training_curves(logs),
        "auroc_by_split": figures.auroc_by_split(result.summary),
        "results_table": figures.results_table(result.summary),
    }
    if result.data_size_curve:
        figs["auroc_vs_pairs"] = figures.auroc_vs_pairs(result.data_size_curve)
    for name, fig in figs.items():
        plots.save_figure(fig, run.path("figures", name))
    return figs


def _read_log(d: Path) -> list[dict]:
    return json.loads((d / "training_log.json").read_text())


def results_table(result: RMTrainingResult, read: str = "eos"):
    """Mean ± std over seeds of pairwise accuracy and AUROC per split, one row per reward model (DataFrame).
    `read` (a key of `READINGS`): the AUROC of the reward read at the EOS ("eos") or at the response's last token
    with no EOS ("last_token"; models without that reading, process reward models, are left out of it). Raises
    ValueError for another `read`, or for "last_token" on a summary where no model has it."""
    import pandas as pd

    if read not in READINGS:
        raise ValueError(f"results_table: read={read!r} is not one of {sorted(READINGS)}")
    key = READINGS[read]
    if not any(key in e for e in result.summary):
        raise ValueError(f"results_table: the summary has no {key!r} (a run evaluated before that reading was "
                         "measured); run notebook 01 again to get it")
    rows = []
    for e in result.summary:
        if key not in e:  # a process reward model has no EOS-free reading: its last step is read at the EOS
            continue
        row = {"reward_model": e["reward_model"], "seeds": e["n_seeds"],
               "pairwise acc": f"{e['pairwise_accuracy']['mean']:.3f} ± {e['pairwise_accuracy']['std']:.3f}"}
        for s, v in e[key].items():
            row[f"AUROC {s}" + ("" if read == "eos" else " (last token)")] = f"{v['mean']:.3f} ± {v['std']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("reward_model")


def process_labels_table(result: RMTrainingResult):
    """What labelling the process reward models' steps cost, one row (pandas DataFrame): the label source, solutions
    and steps labelled, rollouts and the policy tokens they generated, and those per step; empty without process
    reward models."""
    import pandas as pd

    c = dict(result.process_labels)
    if not c:
        return pd.DataFrame()
    c.pop("skipped", None)
    c["policy tokens per step"] = c["policy_tokens"] / c["n_steps"] if c.get("n_steps") else float("nan")
    return pd.DataFrame([c]).set_index("source")
