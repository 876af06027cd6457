"""Tables about the model reward models start from (pandas DataFrames for the notebook): its share of correct
samples per split, every toy policy tried with its verdict check, and the used policy's verdict AUROC."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from .. import evaluation
from ..toyworld.corpus import VERDICT_NO, VERDICT_YES
from ..toyworld.policy import verdict_scores
from .world import RMData


def policy_verdict_table(world: RMData, batch_size: int = 256):
    """Toy world only: AUROC of the policy's own verdict after the EOS (`toyworld.policy.verdict_scores`) for the
    correctness of each split's sampled solutions (pandas DataFrame; empty for a real-data world). Reward models
    start from the EOS state the verdict is read from: a policy near 0.5 here leaves them little to learn from
    (docs/toy_world.md, "Which policies learn the verdict": one policy seed gave 0.59 on `id`, another 0.93)."""
    import pandas as pd

    rows = []
    if world.policy_dir is not None and (Path(world.policy_dir) / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(world.policy_dir)
        if all(tok.convert_tokens_to_ids(v) not in (None, tok.unk_token_id) for v in (VERDICT_YES, VERDICT_NO)):
            for split, recs in world.eval_records.items():
                labels = [r.is_correct for r in recs]
                if len(set(labels)) < 2:
                    continue
                sc = verdict_scores(world.policy_dir, [r.prompt for r in recs], [r.response for r in recs],
                                    batch_size)
                rows.append({"split": split, "policy verdict AUROC": evaluation.auroc(sc, labels), "n": len(recs)})
    return pd.DataFrame(rows, columns=["split", "policy verdict AUROC", "n"]).set_index("split")


def policy_attempts_table(world: RMData):
    """Toy world: every policy tried for this run, its verdict check, which one was used and whether it was trained
    or copied from the kit's shipped policy (pandas DataFrame, one row per policy seed; empty for a real-data
    world)."""
    import pandas as pd

    rows = [{"policy seed": a["seed"], "verdict AUROC (fresh corpus-style id solutions)": a["verdict_auroc"],
             "accepted": a["accepted"], "used": a["used"], "source": a.get("source", "trained")}
            for a in world.policy_attempts]
    return pd.DataFrame(rows, columns=["policy seed", "verdict AUROC (fresh corpus-style id solutions)", "accepted",
                                       "used", "source"]).set_index("policy seed")


def policy_accuracy_table(world: RMData):
    """Share of correct sampled solutions per split (pandas DataFrame)."""
    import pandas as pd

    rows = [{"split": k, "share correct": v, "n": len(world.eval_records.get(k, []))}
            for k, v in world.policy_accuracy.items()]
    # no evaluation sets (pairwise accuracy only, as paper_hh): an empty table with the same columns
    return pd.DataFrame(rows, columns=["split", "share correct", "n"]).set_index("split")
