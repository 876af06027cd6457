"""A process reward model trained for a few steps on tiny stepwise data: it learns the step labels, saves as a plain
two-label `AutoModelForTokenClassification` checkpoint that gives the trained model's per-step scores when loaded
with `from_pretrained`, and trains the same through LoRA and 4-bit + LoRA (the params of paper.yaml and
single_gpu.yaml accept `kind: process`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _examples():
    """Steps right when their result is the sum written, wrong otherwise; the answer step follows its last step."""
    from gcrm_kit.prm import StepwiseExample

    out = []
    for i in range(12):
        a, ok = i % 10, i % 3 != 0
        r = (a + 1) % 10 if ok else (a + 5) % 10
        out.append(StepwiseExample(f"{a}+1?", [f"{a}+1={r}", f"A:{r}"], [ok, ok]))
    return out


def _params(**over):
    from gcrm_kit.params import RMTrainingParams, from_dict

    return from_dict(RMTrainingParams, {
        "reward_models": [{"name": "prm", "kind": "process"}],
        "training": {"batch_size": 4, "epochs": 6, "logging_steps": 1, "save_steps": 100, "learning_rate": 3e-3},
        "device": "cpu", **over})


def test_prm_trains_saves_and_reloads_with_plain_transformers(tiny_policy_dir, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from gcrm_kit.prm import prm_step_scores
    from gcrm_kit.rm_training.process_fit import finish_process_model, fit_process_model

    p, ex = _params(), _examples()
    out = tmp_path / "prm_seed0"
    fit_process_model(p, tiny_policy_dir, ex, ";", p.reward_models[0], 0, out)
    check = finish_process_model(p, out)
    assert check["ok"] and check["n"] == 4 and (out / "DONE").is_file() and not (out / "checkpoints").exists()
    log = json.loads((out / "training_log.json").read_text())
    losses = [h["loss"] for h in log if "loss" in h]
    assert losses[-1] < losses[0]  # it learns the labels
    model = AutoModelForTokenClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "wrong", 1: "right"}
    assert model.config.step_separator == ";"
    saved = json.loads((out / "scores_at_save.json").read_text())
    again = prm_step_scores(model, tok, saved["prompts"], saved["steps"])
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(again, saved["scores"]))
    # the same numbers by hand: softmax of the plain model's logits on the tokenizer's own encoding (BOS, EOS added)
    enc = tok(ex[0].prompt, ";".join(ex[0].steps), return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**enc).logits[0], -1)[:, 1]
    ids = enc["input_ids"][0].tolist()
    sep_at = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids(";")]
    assert np.allclose(prm_step_scores(model, tok, [ex[0].prompt], [ex[0].steps])[0],
                       probs[sep_at + [len(ids) - 1]].numpy(), atol=1e-5)
    # trained: right steps score above wrong ones on the training solutions
    s = prm_step_scores(model, tok, [e.prompt for e in ex], [e.steps for e in ex])
    right = [v for e, sc in zip(ex, s) for v, y in zip(sc, e.labels) if y]
    wrong = [v for e, sc in zip(ex, s) for v, y in zip(sc, e.labels) if not y]
    assert np.mean(right) > np.mean(wrong)


@pytest.fixture(scope="module")
def policy64(tmp_path_factory, tokenizer):
    """A tiny Llama whose widths are multiples of bitsandbytes' 4-bit block size (64)."""
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("policy64")
    LlamaForCausalLM(llama_config(PolicyParams(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
                                  tokenizer)).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.mark.scale
@pytest.mark.parametrize("quant", [False, True], ids=["lora", "4bit_lora"])
def test_prm_through_lora_and_4bit_merges_to_a_plain_checkpoint(policy64, tmp_path, quant):
    if quant:
        pytest.importorskip("bitsandbytes")
    from gcrm_kit.prm import load_prm, prm_step_scores
    from gcrm_kit.rm_training.process_fit import finish_process_model, fit_process_model

    p = _params(lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
                quant={"load_in_4bit": quant, "compute_dtype": "float32"}, training={"batch_size": 4, "epochs": 1,
                                                                                     "save_steps": 100})
    out = tmp_path / "prm_seed0"
    fit_process_model(p, policy64, _examples(), ";", p.reward_models[0], 0, out)
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["task_type"] == "TOKEN_CLS"
    check = finish_process_model(p, out)
    assert check["ok"], check
    model, tok = load_prm(out)
    assert type(model).__name__ == "LlamaForTokenClassification"
    assert len(prm_step_scores(model, tok, ["1+1?"], ["1+1=2;A:2"])[0]) == 2


@pytest.mark.scale
def test_prm_on_single_gpu_params_from_a_stepwise_file(policy64, tmp_path):
    """params/01_rm_training/single_gpu.yaml as shipped (4-bit backbone, LoRA, its training settings) with a process
    reward model trained on a TRL stepwise file; only what cannot run on a CPU is overridden (the tiny backbone,
    float32, a few steps). The checkpoint is merged, checked and evaluated like notebook 01 does."""
    pytest.importorskip("bitsandbytes")
    from pathlib import Path

    from gcrm_kit.data import GenerationRecord, PreferencePair
    from gcrm_kit.params import RMTrainingParams, from_dict, load_params, step_separator_of, to_dict
    from gcrm_kit.rm_training import RMData
    from gcrm_kit.rm_training.process_data import ProcessData, read_stepwise_file
    from gcrm_kit.rm_training.process_fit import evaluate_process_model, train_one_process_model

    root = Path(__file__).resolve().parents[2]
    shipped = to_dict(load_params("01_rm_training", root / "params" / "01_rm_training" / "single_gpu.yaml"))
    rows = [{"prompt": e.prompt, "completions": e.steps, "labels": [bool(y) for y in e.labels]} for e in _examples()]
    data_file = tmp_path / "steps.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = {**shipped, "reward_models": [{"name": "prm", "kind": "process"}], "device": "cpu",
         "process": {**shipped["process"], "data_file": str(data_file), "step_separator": ";"},
         "model": {**shipped["model"], "backbone": str(policy64), "dtype": "float32"},
         "quant": {**shipped["quant"], "compute_dtype": "float32"},
         "training": {**shipped["training"], "batch_size": 4, "epochs": 1, "save_steps": 100, "max_length": 64},
         "distributed": {**shipped["distributed"], "gradient_accumulation_steps": 1}}
    p = from_dict(RMTrainingParams, d)
    assert p.lora.enabled and p.quant.load_in_4bit and p.data.kind == "real" and step_separator_of(p) == ";"
    examples = read_stepwise_file(str(data_file), ";")
    recs = [GenerationRecord(e.prompt, ";".join(e.steps), all(e.labels)) for e in examples]
    held = [PreferencePair("1+1?", "1+1=2;A:2", "1+1=6;A:6")]
    world = RMData(policy64, {"steps": recs}, [], held, {})
    out = train_one_process_model(p, world, ProcessData(examples, [-1] * len(examples), ";"), p.reward_models[0], 0,
                                  tmp_path / "prm_seed0")
    assert json.loads((out / "checkpoint_check.json").read_text())["ok"] and (out / "DONE").is_file()
    m = evaluate_process_model(out, world)
    assert 0 <= m["pairwise_accuracy"] <= 1 and 0 <= m["auroc"]["steps"] <= 1 and "steps" in m["auroc_last_step"]
    scores = json.loads((out / "eval_scores.json").read_text())["steps"]
    assert [len(s) for s in scores] == [len(e.steps) for e in examples]
