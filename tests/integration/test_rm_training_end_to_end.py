"""Notebook 01 end to end on pairs and records that training would refuse (an empty side, identical sides, a
sequence over training.max_length): they are left out of training, the prototype, held-out accuracy and AUROC
alike, counted by reason in metrics.json, and nothing raises after training. Also: real-data adapter skip counts,
no evaluation sets, and the GPU hygiene around launched training."""

import json

import pytest
import torch

from gcrm_kit import rm_training
from gcrm_kit.rm_training import finish as rm_finish
from gcrm_kit.rm_training import train as rm_train
from gcrm_kit.data import GenerationRecord, PreferencePair
from gcrm_kit.models import load_reward_model, score
from gcrm_kit.params import RMTrainingParams, from_dict
from gcrm_kit.qvalues import Prototype, build_prototype
from gcrm_kit.runs import start_run

LONG = "1+1=2;" * 12  # 72 tokens: over max_length 40
BAD = {"empty response": 1, "identical chosen and rejected": 1, "longer than max_length=40": 1}


def _good(i):
    return PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                          f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}")


def _bad():
    return [PreferencePair("8+8?", "8+8=6;A:6", ""), PreferencePair("7+7?", "7+7=4;A:4", "7+7=4;A:4"),
            PreferencePair("6+6?", LONG, "6+6=3;A:3")]


def _params(tmp_path, **extra):
    return from_dict(RMTrainingParams, {
        "output_root": str(tmp_path / "out"), "params_name": "screening",
        "reward_models": [{"name": "baseline"}], "rm_seeds": [0],
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 100, "max_length": 40},
        **extra})


def test_invalid_pairs_and_records_are_left_out_and_counted(tiny_policy_dir, tmp_path):
    train = [_good(i) for i in range(2)] + _bad() + [_good(i) for i in range(2, 12)]
    held = [_good(i) for i in range(12, 16)] + _bad()
    recs = [GenerationRecord(f"{i}+2?", f"{i}+2={(i + 2 + i % 2) % 10};A:{(i + 2 + i % 2) % 10}", i % 2 == 0)
            for i in range(6)]
    recs.insert(2, GenerationRecord("9+2?", "", False))
    recs.insert(4, GenerationRecord("9+3?", LONG, True))
    world = rm_training.RMData(tiny_policy_dir, {"labelled": recs}, train, held, {})
    p = _params(tmp_path)
    run = start_run(p)
    result = rm_training.train_and_evaluate(p, run, world)  # no "empty response" ValueError after training

    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert metrics["skipped"] == {"source": {}, "train": BAD, "heldout": BAD,
                                  "eval": {"labelled": {"empty response": 1, "longer than max_length=40": 1}}}
    assert result.skipped == metrics["skipped"]
    assert "heldout: 3 left out" in rm_training.describe_skips(result.skipped)

    d = result.model_dirs["baseline"][0]
    model, tok = load_reward_model(d)
    kept_held = held[:4]
    rc = score(model, tok, [x.prompt for x in kept_held], [x.chosen for x in kept_held])
    rr = score(model, tok, [x.prompt for x in kept_held], [x.rejected for x in kept_held])
    row = metrics["rows"][0]
    assert row["objective"] == {"role": "baseline", "contrastive_weight": 0.0, "grm_weight": 0.0}
    assert row["pairwise_accuracy"] == pytest.approx(float((rc > rr).float().mean()))  # over valid pairs only
    scores = json.loads((d / "eval_scores.json").read_text())["labelled"]
    assert len(scores) == len(recs) and scores[2] is None and scores[4] is None  # aligned with the records
    assert None not in scores[:2] + scores[5:]

    # the prototype comes from the pairs trained on: the 12 valid ones
    saved = Prototype.load(d, "correct")
    trained = [x for x in train if x not in _bad()]
    ref = build_prototype(model, tok, [x.prompt for x in trained], [x.chosen for x in trained], "correct")
    assert saved.provenance["count"] == 12 and torch.allclose(saved.vector, ref.vector, atol=1e-5)
    assert saved.provenance["pairs_left_out"] == BAD
    rewards = json.loads((d / "rewards_at_save.json").read_text())
    assert "" not in rewards["responses"]  # the checkpoint check probes scorable pairs only


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_real_world_reports_adapter_skips_and_runs_without_eval_sets(tiny_policy_dir, tmp_path):
    """HH-RLHF rows that cannot be split are counted (the adapter leaves the count on its first pair): reported
    under skipped.source, not written into a split's pairs file. No eval_sets (as paper_hh): the policy-accuracy
    table is empty, not a KeyError, and the AUROC parts stay empty."""
    def row(i, same=False):
        c = f"\n\nHuman: {i}+1?\n\nAssistant: {(i + 1) % 10}"
        return {"chosen": c, "rejected": c if same else f"\n\nHuman: {i}+1?\n\nAssistant: {(i + 2) % 10}"}

    train = [row(i) for i in range(8)] + [row(8, same=True), row(9, same=True)]
    test = [row(i) for i in range(3)] + [row(5, same=True)]
    p = _params(tmp_path, model={"backbone": str(tiny_policy_dir)}, data={
        "kind": "real", "train": {"adapter": "hh_rlhf", "source": _jsonl(tmp_path / "train.jsonl", train)},
        "test": {"adapter": "hh_rlhf", "source": _jsonl(tmp_path / "test.jsonl", test)}})
    run = start_run(p)
    world = rm_training.build_world(p, run)
    reason = "rows the hh_rlhf adapter could not use"
    assert world.pair_stats["skipped"]["source"] == {"train": {reason: 2}, "test": {reason: 1}}
    assert len(world.train_pairs) == 8 and len(world.heldout_pairs) == 3
    for name in ("train_pairs", "heldout_pairs"):
        for line in (run.dir / "data" / f"{name}.jsonl").read_text().splitlines():
            assert "skipped_rows" not in json.loads(line)["meta"]
    table = rm_training.policy_accuracy_table(world)
    assert len(table) == 0 and list(table.columns) == ["share correct", "n"]
    result = rm_training.train_and_evaluate(p, run, world)
    assert result.skipped["source"] == {"train": {reason: 2}, "test": {reason: 1}}
    assert result.summary[0]["auroc"] == {} and 0 <= result.rows[0]["pairwise_accuracy"] <= 1
    figures = rm_training.save_figures(run, result)
    assert "auroc_by_split" in figures
    assert list(rm_training.results_table(result).columns) == ["seeds", "pairwise acc"]


def test_gpu_is_freed_before_a_launch_and_checks_run_on_the_params_device(tiny_policy_dir, tmp_path, monkeypatch):
    """Before `run_launched` the notebook process collects its models and empties the CUDA cache; the checkpoint
    check scores on `resolve_device(p.device)` like the prototype build."""
    calls = []
    monkeypatch.setattr(rm_train, "release_accelerator_memory", lambda: calls.append("release"))
    monkeypatch.setattr(rm_train, "run_launched", lambda *a, **k: calls.append("launch"))
    monkeypatch.setattr(rm_train, "estimate_memory", lambda *a, **k: (type("E", (), {
        "describe": lambda self, mode: "estimate"})(), "mode"))
    monkeypatch.setattr(rm_train, "finish_reward_model", lambda p, w, d, pairs: calls.append("finish") or d)
    p = _params(tmp_path, distributed={"n_processes": 2})
    world = rm_training.RMData(tiny_policy_dir, {}, [_good(i) for i in range(8)], [], {})
    rm_training.train_one_reward_model(p, world, p.reward_models[0], 0, tmp_path / "rm")
    assert calls == ["release", "launch", "finish"]
    job = json.loads((tmp_path / "rm" / "launch" / "fit_reward_model.json").read_text())
    assert job["module"] == "gcrm_kit.rm_training.worker" and job["stage"] == "fit_reward_model"

    monkeypatch.undo()
    devices, asked = [], []
    original = rm_finish.check_saved_rewards

    def spy(out_dir, tolerance=None, device="cpu"):
        devices.append(device)
        return original(out_dir, tolerance, device)

    def resolve(name):
        asked.append(name)
        return torch.device("cpu", 0)  # a device only the params' device gives

    monkeypatch.setattr(rm_finish, "check_saved_rewards", spy)
    monkeypatch.setattr(rm_finish, "resolve_device", resolve)
    out = rm_training.train_one_reward_model(_params(tmp_path, device="cpu"), world, p.reward_models[0], 0,
                                             tmp_path / "rm2")
    assert asked == ["cpu"] and devices == [torch.device("cpu", 0)]
    assert json.loads((out / "checkpoint_check.json").read_text())["ok"]
