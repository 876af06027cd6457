"""gcrm_kit.evaluation: aggregation over seeds."""

import math

from gcrm_kit.evaluation import summarise_over_seeds


def test_summarise_over_seeds_groups_in_order_and_nests_dotted_metrics():
    rows = [{"m": "b", "x": 1.0, "auroc": {"id": 0.5}}, {"m": "a", "x": 2.0},
            {"m": "b", "x": 3.0, "auroc": {"id": 0.7}}]
    out = summarise_over_seeds(rows, ["m"], ["x", "auroc.id", "absent"])
    assert [e["m"] for e in out] == ["b", "a"] and [e["n_seeds"] for e in out] == [2, 1]
    assert out[0]["x"] == {"mean": 2.0, "std": math.sqrt(2.0)}
    assert math.isclose(out[0]["auroc"]["id"]["mean"], 0.6) and "auroc" not in out[1] and "absent" not in out[0]
    assert out[1]["x"] == {"mean": 2.0, "std": 0.0}
