"""Notebook 01 on real-data params (data.kind: real): pairs, held-out pairs and evaluation sets read from local files
through the adapters, a benchmark answered greedily by the backbone, reward models trained and evaluated."""

import json

import pytest

pytestmark = [pytest.mark.scale, pytest.mark.slow]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_real_data_run_of_notebook_01(tiny_policy_dir, tmp_path):
    from gcrm_kit.params import RMTrainingParams, from_dict
    from gcrm_kit.rm_training import build_world, train_and_evaluate
    from gcrm_kit.runs import start_run

    pairs = [{"prompt": f"{i % 10}+1?", "chosen": f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
              "rejected": f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}"} for i in range(12)]
    records = [{"prompt": f"{i}+2?", "response": f"{i}+2={(i + 2 + (i % 2)) % 10};A:{(i + 2 + (i % 2)) % 10}",
                "is_correct": i % 2 == 0} for i in range(8)]
    problems = [{"question": f"{i}+0?", "expected_answer": str(i)} for i in range(4)]
    p = from_dict(RMTrainingParams, {
        "output_root": str(tmp_path / "out"), "params_name": "real_test",
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "logging_steps": 1, "save_steps": 100},
        "model": {"backbone": str(tiny_policy_dir)},
        "data": {"kind": "real", "max_new_tokens": 8,
                 "train": {"adapter": "pairs", "source": _jsonl(tmp_path / "train.jsonl", pairs)},
                 "test": {"adapter": "pairs", "source": _jsonl(tmp_path / "test.jsonl", pairs[:4])},
                 "eval_sets": {"labelled": {"adapter": "records",
                                            "source": _jsonl(tmp_path / "recs.jsonl", records)},
                               "bench": {"adapter": "qa", "source": _jsonl(tmp_path / "qa.jsonl", problems)}}}})
    run = start_run(p)
    world = build_world(p, run)
    assert len(world.train_pairs) == 12 and len(world.heldout_pairs) == 4
    assert set(world.eval_records) == {"labelled", "bench"} and len(world.eval_records["bench"]) == 4
    assert all(r.meta["reference"] == str(i) for i, r in enumerate(world.eval_records["bench"]))
    result = train_and_evaluate(p, run, world)
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert {r["reward_model"] for r in metrics["rows"]} == {"baseline", "goal_conditioned"}
    for row in metrics["rows"]:
        assert 0 <= row["pairwise_accuracy"] <= 1 and set(row["auroc"]) == {"labelled", "bench"}
        assert 0 <= row["auroc"]["labelled"] <= 1
    assert result.summary[0]["auroc"].keys() == {"labelled", "bench"}
