"""Notebook 01 on real-data params (data.kind: real): pairs, held-out pairs and evaluation sets read from local files
through the adapters, a benchmark answered greedily by the backbone, reward models trained and evaluated."""

import json

import pytest

pytestmark = [pytest.mark.scale, pytest.mark.slow]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def real_rm_run(tiny_policy_dir, tmp_path_factory):
    """Notebook 01 on real-data params: local JSONL files through the adapters. Returns (params, run, world,
    result)."""
    from gcrm_kit.params import RMTrainingParams, from_dict
    from gcrm_kit.rm_training import build_world, train_and_evaluate
    from gcrm_kit.runs import start_run

    tmp_path = tmp_path_factory.mktemp("real")

    pairs = [{"prompt": f"{i % 10}+1?", "chosen": f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
              "rejected": f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}"} for i in range(12)]
    records = [{"prompt": f"{i}+2?", "response": f"{i}+2={(i + 2 + (i % 2)) % 10};A:{(i + 2 + (i % 2)) % 10}",
                "is_correct": i % 2 == 0} for i in range(8)]
    problems = [{"question": f"{i}+0?", "expected_answer": str(i)} for i in range(4)]
    p = from_dict(RMTrainingParams, {
        "output_root": str(tmp_path / "out"), "params_name": "real_test",
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 100},
        "model": {"backbone": str(tiny_policy_dir)},
        "data": {"kind": "real", "max_new_tokens": 8,
                 "train": {"adapter": "pairs", "source": _jsonl(tmp_path / "train.jsonl", pairs)},
                 "test": {"adapter": "pairs", "source": _jsonl(tmp_path / "test.jsonl", pairs[:4])},
                 "eval_sets": {"labelled": {"adapter": "records",
                                            "source": _jsonl(tmp_path / "recs.jsonl", records)},
                               "bench": {"adapter": "qa", "source": _jsonl(tmp_path / "qa.jsonl", problems)}}}})
    run = start_run(p)
    world = build_world(p, run)
    return p, run, world, train_and_evaluate(p, run, world)


def test_real_data_run_of_notebook_01(real_rm_run):
    p, run, world, result = real_rm_run
    assert len(world.train_pairs) == 12 and len(world.heldout_pairs) == 4
    assert set(world.eval_records) == {"labelled", "bench"} and len(world.eval_records["bench"]) == 4
    assert all(r.meta["reference"] == str(i) for i, r in enumerate(world.eval_records["bench"]))
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert {r["reward_model"] for r in metrics["rows"]} == {"baseline", "goal_conditioned"}
    for row in metrics["rows"]:
        assert 0 <= row["pairwise_accuracy"] <= 1 and set(row["auroc"]) == {"labelled", "bench"}
        assert 0 <= row["auroc"]["labelled"] <= 1
    assert result.summary[0]["auroc"].keys() == {"labelled", "bench"}


def test_notebook_02_on_a_real_data_run(real_rm_run, tmp_path, monkeypatch):
    """Notebook 02 (headless, as `gcrm run` runs it) on the real-data run's labelled evaluation set: no toy-world
    step structure, so no first wrong step; everything else is computed."""
    from gcrm_kit.cli import main
    from gcrm_kit.io import project_root

    _, rm_run, _, _ = real_rm_run
    params = tmp_path / "real.yaml"
    params.write_text(f"params_name: real\noutput_root: {tmp_path}\nrm_run: {rm_run.dir}\nsplit: labelled\n"
                      "n_samples: 0\nn_bootstrap: 20\nn_examples: 2\nprojection: {n_sequences: 8}\n")
    monkeypatch.chdir(project_root())
    assert main(["run", "02_representation_analysis", "--params", str(params), "--quiet"]) == 0
    (run,) = (tmp_path / "02_representation_analysis" / "real").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["inputs"]["n_samples"] == 8 and set(metrics["partial_auroc"]) == {"baseline", "goal_conditioned"}
    for by in metrics["partial_auroc"].values():
        assert all(0.0 <= e["mean"] <= 1.0 for points in by.values() for e in points.values())
    assert (run / "figures" / "mean_curves.html").is_file()


def test_notebook_03_samples_a_real_data_runs_questions(real_rm_run, tmp_path, monkeypatch):
    """Notebook 03 on the real-data run: N samples per question of its question-answer set `bench`, drawn from
    the run's policy and labelled against the references; thresholds chosen on validation; online pruning skipped.
    A set without references (`labelled`) is refused with its name."""
    from gcrm_kit.cli import main
    from gcrm_kit.data import GenerationRecord, load_jsonl
    from gcrm_kit.real_data import answers_match, extract_answer
    from gcrm_kit.io import project_root

    _, rm_run, _, _ = real_rm_run
    monkeypatch.chdir(project_root())
    base = (f"params_name: real\noutput_root: {tmp_path}\nrm_run: {rm_run.dir}\nn_validation_questions: 2\n"
            "n_test_questions: 2\nsamples_per_question: 3\nmax_new_tokens: 8\nrandom_repeats: 2\nbatch_size: 16\n")
    params = tmp_path / "real.yaml"
    params.write_text(base + "split: bench\n")
    assert main(["run", "03_filtering", "--params", str(params), "--quiet"]) == 0
    (run,) = (tmp_path / "03_filtering" / "real").iterdir()
    test = load_jsonl(run / "data" / "samples_test.jsonl", GenerationRecord)
    val = load_jsonl(run / "data" / "samples_validation.jsonl", GenerationRecord)
    assert len(test) == len(val) == 2 * 3 and not {r.prompt for r in test} & {r.prompt for r in val}
    for r in test + val:  # the label is the reference check of the extracted answer
        assert r.answer == extract_answer(r.response)
        assert r.is_correct == answers_match(r.answer, r.meta["reference"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["online"] == [] and metrics["rows"]

    params.write_text(base + "split: labelled\n")
    assert main(["run", "03_filtering", "--params", str(params), "--quiet"]) == 1  # the notebook stopped
    failed = [d for d in (tmp_path / "03_filtering" / "real").iterdir() if (d / "FAILED.json").is_file()]
    assert len(failed) == 1 and "no reference answer" in json.loads((failed[0] / "FAILED.json").read_text())["error"]


@pytest.mark.parametrize("pad_param,declare_unk", [("", True), ("<pad>", False)], ids=["unk", "named"])
def test_benchmark_answering_with_a_tokenizer_without_pad_token(tmp_path, pad_param, declare_unk):
    """A backbone whose tokenizer has no pad token (CodeLlama, Llama 3) answers benchmark questions in batches: the
    tokenizer gets the pad token the reward models get (its unk token, or `model.pad_token`), so the left-padded
    generation batch has a pad id (it was None: TypeError in pad_ids)."""
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from gcrm_kit.params import PolicyParams, RMTrainingParams, from_dict
    from gcrm_kit.rm_training import build_world
    from gcrm_kit.runs import start_run
    from gcrm_kit.toyworld import build_tokenizer
    from gcrm_kit.toyworld.policy import llama_config

    special = {"bos_token": "<s>", "eos_token": "</s>", **({"unk_token": "<unk>"} if declare_unk else {})}
    tok = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer().backend_tokenizer, **special)
    assert tok.pad_token_id is None
    backbone = tmp_path / "backbone"
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config(PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
                                  tok)).save_pretrained(backbone)
    tok.save_pretrained(backbone)
    pairs = [{"prompt": f"{i}+1?", "chosen": f"{i}+1={(i + 1) % 10};A:{(i + 1) % 10}",
              "rejected": f"{i}+1={(i + 2) % 10};A:{(i + 2) % 10}"} for i in range(6)]
    problems = [{"question": f"{i}+0?", "expected_answer": str(i)} for i in range(5)]
    p = from_dict(RMTrainingParams, {
        "output_root": str(tmp_path / "out"), "params_name": "no_pad",
        "model": {"backbone": str(backbone), "pad_token": pad_param},
        "data": {"kind": "real", "max_new_tokens": 4,
                 "train": {"adapter": "pairs", "source": _jsonl(tmp_path / "train.jsonl", pairs)},
                 "eval_sets": {"bench": {"adapter": "qa", "source": _jsonl(tmp_path / "qa.jsonl", problems)}}}})
    world = build_world(p, start_run(p))
    bench = world.eval_records["bench"]  # answered; an empty answer would be left out and counted
    assert len(bench) + sum(world.pair_stats["skipped"]["eval"]["bench"].values()) == 5
    assert all(r.meta["reference"] in {str(i) for i in range(5)} for r in bench)
