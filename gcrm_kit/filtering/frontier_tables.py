"""Tables of the accuracy-vs-compute frontier (`frontier.FrontierResult`): per method the test numbers at the
setting chosen on validation, mean ± std over rm seeds (`frontier_table`) and per rm seed (`frontier_seed_table`),
the oracles (`oracle_table`), and the sequential methods over many draw orders (`order_spread_table`)."""

from __future__ import annotations

import pandas as pd

from .frontier import FrontierResult


def _pct(e: dict | None) -> str:
    return "" if e is None else f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}"


def _num(e: dict | None, fmt: str = ".3f") -> str:
    if e is None or e["mean"] != e["mean"]:
        return ""
    return f"{e['mean']:{fmt}} ± {e['std']:{fmt}}"


def frontier_table(result: FrontierResult) -> pd.DataFrame:
    """One row per method: mode, rm seeds, the settings chosen on validation, % compute saved, % tokens saved,
    vote accuracy (test; mean ± std over rm seeds), seconds measured online (section 7's run, or the sequential
    methods' on-demand run) and predicted by the FLOP model, the share of seconds saved online against generating
    every sample in the same loop, and whether it meets the target (compute saved, and accuracy within the drop of
    the unfiltered vote's)."""
    meets = set(result.target["methods_meeting_target"])
    rows = []
    for e in result.summary:
        mine = [r for r in result.chosen if r["method"] == e["method"]]
        rows.append({"method": e["method"], "mode": mine[0]["mode"], "seeds": e["n_seeds"],
                     "chosen setting": ", ".join(dict.fromkeys(r["setting"] for r in mine)),
                     "% compute saved": _pct(e.get("share_compute_saved")),
                     "% tokens saved": _pct(e.get("share_tokens_saved")),
                     "vote accuracy": _num(e.get("accuracy")),
                     "seconds (online)": _num(e.get("seconds_online"), ".2f"),
                     "seconds (FLOP model)": _num(e.get("seconds_flop_model"), ".2f"),
                     "% seconds saved (online)": _pct(e.get("share_seconds_saved")),
                     "meets target": e["method"] in meets})
    return pd.DataFrame(rows).set_index("method")


def frontier_seed_table(result: FrontierResult) -> pd.DataFrame:
    """One row per (method, rm seed): the chosen setting, its validation accuracy and compute saved, and on test
    the compute and tokens saved, the accuracy, the FLOPs of policy and scorer, the seconds measured online and the
    scorer size (as a share of the policy's) below which the method saves compute."""
    cols = {"mode": "mode", "setting": "chosen setting", "validation_accuracy": "validation accuracy",
            "validation_share_compute_saved": "validation compute saved", "share_compute_saved": "compute saved",
            "share_tokens_saved": "tokens saved", "accuracy": "vote accuracy", "policy_flops": "policy FLOPs",
            "scorer_flops": "scorer FLOPs", "seconds_online": "seconds (online)",
            "break_even_scorer_ratio": "break-even scorer / policy size"}
    df = pd.DataFrame(result.chosen)
    return df[["method", "rm_seed", *[c for c in cols if c in df]]].rename(columns=cols).set_index(
        ["method", "rm_seed"])


def oracle_table(result: FrontierResult) -> pd.DataFrame:
    """The oracles on test: compute and tokens saved, vote accuracy."""
    if not result.oracles:
        return pd.DataFrame(columns=["compute saved", "tokens saved", "vote accuracy"])
    df = pd.DataFrame(result.oracles).set_index("method")
    return df[["share_compute_saved", "share_tokens_saved", "accuracy"]].rename(
        columns={"share_compute_saved": "compute saved", "share_tokens_saved": "tokens saved",
                 "accuracy": "vote accuracy"})


def order_spread_table(rows: list[dict]) -> pd.DataFrame:
    """One row per (method, chosen setting) of `order_spread.order_spread`: the rm seeds that chose it, the draw
    orders replayed, samples drawn per question, % compute saved and vote accuracy (mean ± sd over orders), the
    standard error of that mean, its drop below the unfiltered vote (points), whether the drop is within the
    target's and whether the method meets the target on these means, and the reference: the vote over the first K
    samples of each question in the same orders."""
    out = [{"method": r["method"], "setting": r["setting"], "rm seeds": ", ".join(map(str, r["rm_seeds"])),
            "orders": r["repeats"], "samples per question": f"{r['samples_per_question']:.1f}",
            "% compute saved": f"{100 * r['share_compute_saved_mean']:.1f} ± {100 * r['share_compute_saved_sd']:.1f}",
            "vote accuracy": f"{r['accuracy_mean']:.4f} ± {r['accuracy_sd']:.4f}",
            "standard error": "" if r["accuracy_se"] is None else f"{r['accuracy_se']:.4f}",
            "drop (points)": f"{100 * r['accuracy_drop']:.2f}", "within drop": r["within_drop"],
            "meets target": r["meets_target"],
            "vote of first K": f"K={r['prefix_k']}: {r['prefix_accuracy_mean']:.4f} ± {r['prefix_accuracy_sd']:.4f}"}
           for r in rows]
    return pd.DataFrame(out).set_index(["method", "setting"]) if out else pd.DataFrame()
