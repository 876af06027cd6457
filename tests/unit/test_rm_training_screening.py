"""Notebook 01's validity rules on the evaluation side, skip counts, the tables with no evaluation sets, and the
sample cache key. No model is trained here."""

import json

import pytest

from gcrm_kit import rm_training
from gcrm_kit.rm_training import figures
from gcrm_kit.rm_training import world as rm_world
from gcrm_kit.toyworld import sampling
from gcrm_kit.data import GenerationRecord, PreferencePair, encode_pairs, save_jsonl
from gcrm_kit.params import RMTrainingParams, from_dict
from gcrm_kit.rm_training import (RMTrainingResult, RMData, describe_skips, policy_accuracy_table, screen_pairs,
                                  screen_records, screen_world, summarise)

LONG = "1+1=2;" * 12  # 72 tokens of the character-level toy tokenizer


def _pairs():
    return [PreferencePair("1+2?", "1+2=3;A:3", "1+2=4;A:4"),
            PreferencePair("2+2?", "", "2+2=5;A:5"),                     # empty chosen
            PreferencePair("3+2?", "3+2=5;A:5", "3+2=5;A:5"),            # identical sides
            PreferencePair("4+2?", "4+2=6;A:6", LONG),                   # too long a rejected side
            PreferencePair("5+2?", "5+2=7;A:7", "5+2=8;A:8")]


def test_screen_pairs_applies_encode_pairs_rules(tokenizer):
    enc, kept, rep = screen_pairs(tokenizer, _pairs(), 40)
    assert [p.prompt for p in kept] == ["1+2?", "5+2?"]
    assert rep.kept == 2 and dict(rep.skipped) == {"empty response": 1, "identical chosen and rejected": 1,
                                                   "longer than max_length=40": 1}
    ref, ref_rep = encode_pairs(tokenizer, _pairs(), 40)
    assert ref_rep.as_dict() == rep.as_dict()
    assert [(e["chosen"].input_ids, e["rejected"].input_ids) for e in enc] == \
           [(e["chosen"].input_ids, e["rejected"].input_ids) for e in ref]
    _, kept, rep = screen_pairs(tokenizer, _pairs(), None)  # no length limit
    assert len(kept) == 3 and "longer than max_length=None" not in rep.skipped


def test_screen_records(tokenizer):
    recs = [GenerationRecord("1+2?", "1+2=3;A:3", True), GenerationRecord("1+3?", "", False),
            GenerationRecord("1+4?", LONG, False), GenerationRecord("1+5?", "1+5=6;A:6", True)]
    kept, idx, rep = screen_records(tokenizer, recs, 40)
    assert idx == [0, 3] and kept == [recs[0], recs[3]]
    assert dict(rep.skipped) == {"empty response": 1, "longer than max_length=40": 1}
    kept, idx, rep = screen_records(tokenizer, recs, None)
    assert idx == [0, 2, 3] and dict(rep.skipped) == {"empty response": 1}


def test_screen_world_counts_what_it_leaves_out(tokenizer):
    recs = [GenerationRecord("1+2?", "1+2=3;A:3", True), GenerationRecord("1+3?", "", False)]
    world = RMData("policy", {"id": recs, "verbal": recs[:1]}, _pairs(), _pairs(),
                     {"train_pairs": 5, "heldout_pairs": 5}, {"id": 0.5})
    out = screen_world(world, tokenizer, 40, {"train": {"rows the hh_rlhf adapter could not use": 3}})
    assert len(out.train_pairs) == len(out.heldout_pairs) == 2 and out.eval_records["id"] == recs[:1]
    assert out.policy_accuracy == {"id": 0.5}  # the policy's accuracy over all its samples
    s = out.pair_stats["skipped"]
    assert out.pair_stats["train_pairs"] == out.pair_stats["heldout_pairs"] == 2
    assert s["train"] == s["heldout"] == {"empty response": 1, "identical chosen and rejected": 1,
                                          "longer than max_length=40": 1}
    assert s["eval"] == {"id": {"empty response": 1}, "verbal": {}}
    text = describe_skips(s)
    assert "train: 3 left out" in text and "eval id: 1 left out (empty response: 1)" in text
    assert "source train: 3 left out" in text and "verbal" not in text
    assert describe_skips(screen_world(RMData("p", {}, _pairs()[:1], [], {}), tokenizer, 40)
                          .pair_stats["skipped"]) == "nothing left out"
    with pytest.raises(RuntimeError, match="no training pairs"):
        screen_world(RMData("p", {}, _pairs()[1:4], [], {}), tokenizer, 40)


def test_source_skips_are_taken_off_the_pairs():
    pairs = [PreferencePair("a", "b", "c", {"skipped_rows": 4, "messages": []}), PreferencePair("d", "e", "f")]
    assert rm_world._source_skips(pairs, "hh_rlhf") == {"rows the hh_rlhf adapter could not use": 4}
    assert all("skipped_rows" not in p.meta for p in pairs) and pairs[0].meta == {"messages": []}
    assert rm_world._source_skips(pairs, "hh_rlhf") == {}

    class Listed(list):  # an adapter's list carrying its counts in `stats`
        stats = {"skipped_rows": 2}

    assert rm_world._source_skips(Listed(pairs), "hh_rlhf") == {"rows the hh_rlhf adapter could not use": 2}


def test_tables_without_evaluation_sets():
    """paper_hh has no eval_sets: policy accuracy is {} and the AUROC columns are empty."""
    world = RMData("policy", {}, [], [], {}, {})
    table = policy_accuracy_table(world)
    assert len(table) == 0 and list(table.columns) == ["share correct", "n"] and table.index.name == "split"
    full = policy_accuracy_table(RMData("policy", {"id": [GenerationRecord("q", "r", True)] * 2}, [], [], {},
                                          {"id": 1.0, "pairs_samples_id": 0.5}))
    assert full.loc["id", "n"] == 2 and full.loc["pairs_samples_id", "share correct"] == 0.5
    rows = [{"reward_model": "baseline", "rm_seed": s, "n_train_pairs": 4, "all_pairs": True,
             "pairwise_accuracy": a, "auroc": {}} for s, a in ((0, 0.5), (1, 0.75))]
    summary = summarise(rows, [])
    assert summary[0]["auroc"] == {} and summary[0]["pairwise_accuracy"]["mean"] == 0.625
    table = rm_training.results_table(RMTrainingResult("run", world, rows, summary, {}))
    assert list(table.columns) == ["seeds", "pairwise acc"]
    figures.auroc_by_split(summary)
    figures.results_table(summary)


def test_sample_cache_key_holds_the_batch_size(monkeypatch, tmp_path):
    keys = []

    def fake_cached(cache_root, kind, key, build):
        keys.append(key)
        save_jsonl([GenerationRecord("q", "r", True)], tmp_path / "records.jsonl")
        return tmp_path

    monkeypatch.setattr(sampling, "cached", fake_cached)
    for purpose in ("pairs", "eval", "best_of_n"):
        keys.clear()
        for bs in (8, 16):
            p = from_dict(RMTrainingParams, {"pairs": {"batch_size": bs},
                                             "evaluation": {"batch_size": bs, "best_of_n": [1, 2]}})
            sampling.cached_samples(p, tmp_path, tmp_path, "id", purpose)
        assert keys[0]["batch_size"] == 8 and keys[1]["batch_size"] == 16
        assert json.dumps(keys[0], sort_keys=True) != json.dumps(keys[1], sort_keys=True)
