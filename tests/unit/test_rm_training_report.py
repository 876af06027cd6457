"""Notebook 01's report: the summary over seeds (pairwise accuracy; AUROC per split with the count of seeds where
it is defined) and metrics.json, written by one function, with the best-of-n curve when it was measured."""

import json
import math

import pytest

from gcrm_kit.params import RMTrainingParams
from gcrm_kit.rm_training import RMData, RMTrainingResult, summarise, write_metrics


def _rows():
    nan = float("nan")
    return [{"reward_model": "b", "rm_seed": 0, "pairwise_accuracy": 0.5, "auroc": {"id": 0.6, "x.y": nan}},
            {"reward_model": "g", "rm_seed": 0, "pairwise_accuracy": 0.9, "auroc": {"id": 0.8, "x.y": 0.7}},
            {"reward_model": "b", "rm_seed": 1, "pairwise_accuracy": 0.7, "auroc": {"id": 0.8, "x.y": 0.9}}]


def test_summary_per_model_over_seeds():
    b, g = summarise(_rows(), ["id", "x.y"])
    assert list(b) == ["reward_model", "n_seeds", "pairwise_accuracy", "auroc"]
    assert (b["reward_model"], b["n_seeds"], g["reward_model"], g["n_seeds"]) == ("b", 2, "g", 1)
    assert b["pairwise_accuracy"] == {"mean": pytest.approx(0.6), "std": pytest.approx(math.sqrt(0.02))}
    assert b["auroc"]["id"] == {"mean": pytest.approx(0.7), "std": pytest.approx(math.sqrt(0.02)), "n": 2}
    assert b["auroc"]["x.y"] == {"mean": 0.9, "std": 0.0, "n": 1}  # a split name may hold a dot; NaN left out
    assert g["auroc"]["x.y"] == {"mean": 0.7, "std": 0.0, "n": 1} and g["pairwise_accuracy"]["std"] == 0.0


class _Run:
    def __init__(self, d):
        self.dir = d

    def write_json(self, name, obj):
        (self.dir / name).write_text(json.dumps(obj))


def test_metrics_json_is_written_in_one_place(tmp_path):
    world = RMData(tmp_path, {}, [], [], {"train_pairs": 3}, {"id": 0.5}, [{"seed": 0}])
    rows = _rows()[1:]  # no NaN: the file is compared with what was written
    result = RMTrainingResult(tmp_path, world, rows, summarise(rows, []), {}, [], {"train": {}})
    p = RMTrainingParams(params_name="t", seed=3)
    write_metrics(_Run(tmp_path), p, result)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m) == {"notebook", "params_name", "seed", "policy_accuracy", "policy_attempts", "pair_stats",
                      "skipped", "rows", "summary", "data_size_curve"}
    assert (m["notebook"], m["params_name"], m["seed"], m["pair_stats"]) == ("01_rm_training", "t", 3,
                                                                              {"train_pairs": 3})
    write_metrics(_Run(tmp_path), p, result, best_of_n={"rows": []})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {**m, "best_of_n": {"rows": []}}
