"""The notebooks' world-bounds steps without a policy: which notebook-01 samples were cut at the token limit, the
per-split table, the real-data path (the records' own log-probabilities, or a skip), and metrics.json holding the
facts in notebooks 01 and 03 (the toy tokenizer has one token per character)."""

import json
from dataclasses import replace

import numpy as np

from gcrm_kit.bounds import world_bounds
from gcrm_kit.data import GenerationRecord
from gcrm_kit.filtering import write_metrics as write_filtering_metrics
from gcrm_kit.filtering.offline import OfflineResult
from gcrm_kit.filtering.setup import RMSetup
from gcrm_kit.params import FilteringParams, RMTrainingParams
from gcrm_kit.rm_training import (RMData, RMTrainingResult, finished_flags, world_bounds_of, world_bounds_table,
                                  write_metrics)


class _Run:
    def __init__(self, d):
        self.dir = d

    def write_json(self, name, obj):
        (self.dir / name).write_text(json.dumps(obj))


def rec(split, qid, response, correct, answer, **meta):
    return GenerationRecord("1+2?", response, correct, answer, {"split": split, "question_id": qid, **meta})


def test_a_response_as_long_as_the_limit_was_cut(tokenizer):
    recs = [rec("id", 0, "1+2=3;A:3", True, "3"),              # 9 tokens < 10: ended at its EOS
            rec("id", 1, "1+2=3;3+3=", False, None),           # 10 tokens: cut at the limit
            rec("id", 2, "1+2=3;3+3=", False, None, finished=True),   # says so itself
            rec("id", 3, "1+2", False, None, finished=False)]
    assert finished_flags(recs, tokenizer, 10) == [True, False, True, False]


def _records(split):
    return [rec(split, 0, "1+2=3;A:3", True, "3", first_error_char=None),
            rec(split, 1, "1+2=4;A:4", False, "4", first_error_char=0),
            rec(split, 2, "1+2=3;3*2=5;A:5", False, "5", first_error_char=6)]


def test_table_has_one_column_pair_per_split_and_no_repeated_share(tokenizer):
    bounds = {s: world_bounds(_records(s), tokenizer) for s in ("id", "verbal")}
    table = world_bounds_table(bounds)
    assert list(table.columns) == [("id", "value"), ("id", "n"), ("verbal", "value"), ("verbal", "n")]
    assert table.loc["share correct", ("id", "value")] == 1 / 3
    assert not any(f.startswith("share correct (") for f in table.index)
    assert table.loc["first error position: mean", ("verbal", "value")] == np.mean([0 / 9, 6 / 15])
    assert world_bounds_table({}).empty


def _logprob_meta(response: str) -> dict:
    n = len(response) + 1  # the response's tokens and the EOS; the engine added the sampled token at the first
    return {"token_logprobs": [-0.5] * n, "top_logprobs": [[-0.1, -2.0, -3.0, -9.0]] + [[-0.1, -2.0, -3.0]] * (n - 1)}


def test_real_data_uses_the_records_log_probabilities_or_skips(tmp_path, tokenizer, capsys):
    tokenizer.save_pretrained(tmp_path)
    p = RMTrainingParams()
    p = replace(p, data=replace(p.data, kind="real"))
    plain = {"gsm8k": [rec("gsm8k", i, r, ok, a) for i, (r, ok, a) in enumerate([("x=3", True, "3"),
                                                                                   ("x=4", False, "4")])]}
    world = RMData(tmp_path, plain, [], [], {})
    assert world_bounds_of(p, world) == {} and world.world_bounds == {}
    assert "world bounds skipped" in capsys.readouterr().out

    with_lp = {s: [replace(r, meta={**r.meta, **_logprob_meta(r.response)}) for r in recs]
               for s, recs in plain.items()}
    with_lp["gsm8k"][1].meta["token_logprobs"] = [-2.0] * 4  # the wrong one is less sure of itself
    world = RMData(tmp_path, with_lp, [], [], {})
    bounds = world_bounds_of(p, world)
    assert set(bounds) == {"gsm8k"} and world.world_bounds is bounds
    b = bounds["gsm8k"]
    assert b.confidence_auroc["mean_logprob"] == 1.0 and b.first_error is None and b.share_correct == 0.5
    assert b.settings["step_sep"] is None and b.tokens_generated == 3 + 1 + 3 + 1


def test_notebook_01_metrics_hold_the_bounds_per_split(tmp_path, tokenizer):
    world = RMData(tmp_path, {}, [], [], {"train_pairs": 3}, {"id": 0.5}, [{"seed": 0}])
    result = RMTrainingResult(tmp_path, world, [], [], {}, [], {"train": {}})
    p = RMTrainingParams(params_name="t")
    write_metrics(_Run(tmp_path), p, result)
    before = json.loads((tmp_path / "metrics.json").read_text())
    assert "world_bounds" not in before  # not measured: no key
    world.world_bounds = {"id": world_bounds(_records("id"), tokenizer)}
    write_metrics(_Run(tmp_path), p, result)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m == {**before, "world_bounds": {"id": world.world_bounds["id"].as_dict()}}
    assert m["world_bounds"]["id"]["share_correct"] == 1 / 3 and m["world_bounds"]["id"]["confidence_auroc"] is None


def test_notebook_03_metrics_hold_the_test_set_bounds(tmp_path, tokenizer):
    setup = RMSetup(tmp_path, RMTrainingParams(), tmp_path, [0], {"goal": [tmp_path], "baseline": [tmp_path]},
                    {"goal": "goal_conditioned", "baseline": "baseline"})
    offline = OfflineResult(rows=[], paper_rows=[], frontier=[], signals=[], chosen={}, credits={})
    p = FilteringParams(params_name="t")
    write_filtering_metrics(_Run(tmp_path), p, setup, {}, offline, [], [])
    before = json.loads((tmp_path / "metrics.json").read_text())
    assert "world_bounds" not in before
    b = world_bounds(_records("id"), tokenizer)
    write_filtering_metrics(_Run(tmp_path), p, setup, {}, offline, [], [], b)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {**before, "world_bounds": {"test": b.as_dict()}}
