"""Process reward models: where a step's label sits in the sequence, the per-step loss, the bad stepwise input a PRM
refuses, step labels from the verifier and from Monte-Carlo rollouts, and per-step scores read off a tiny
token-classification model."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from gcrm_kit import prm_labels
from gcrm_kit.data import DataError, GenerationRecord
from gcrm_kit.prm import (IGNORE, StepwiseCollator, StepwiseExample, check_example, encode_examples, prm_from_policy,
                          prm_step_scores, step_loss, step_positions)

SOLUTION = "7+3=0;0*2=0;A:0"


def test_step_labels_sit_on_each_separator_and_the_eos(tokenizer):
    enc, pos = step_positions(tokenizer, "3+7*2?", SOLUTION.split(";"), ";")
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert [tokens[i] for i in pos] == [";", ";", tokenizer.eos_token]
    assert pos[-1] == len(enc.input_ids) - 1
    # the token before each separator is the step's last character
    assert [tokens[i - 1] for i in pos[:2]] == ["0", "0"]


def test_collator_puts_targets_on_the_label_tokens_only(tokenizer):
    ex = [StepwiseExample("3+7*2?", SOLUTION.split(";"), [True, False, False]),
          StepwiseExample("1+1?", ["1+1=2", "A:2"], [1.0, 0.25])]
    enc, counts = encode_examples(tokenizer, ex, ";", 128)
    assert counts == {"kept": 2, "skipped": {}}
    b = StepwiseCollator(tokenizer.pad_token_id)(enc)
    t = b["step_targets"]
    assert t.shape == b["input_ids"].shape
    labelled = (t != IGNORE).nonzero().tolist()
    assert labelled == [[0, p] for p in enc[0]["positions"]] + [[1, p] for p in enc[1]["positions"]]
    assert t[0, enc[0]["positions"]].tolist() == [1.0, 0.0, 0.0] and t[1, enc[1]["positions"]].tolist() == [1.0, 0.25]


def test_too_long_examples_are_left_out_and_counted(tokenizer):
    ex = [StepwiseExample("3+7*2?", SOLUTION.split(";"), [True, True, True])]
    enc, counts = encode_examples(tokenizer, ex, ";", 10)
    assert enc == [] and counts["skipped"] == {"longer than max_length=10": 1}


def test_step_loss_is_the_soft_cross_entropy_at_labelled_tokens():
    logits = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [5.0, 5.0]]])
    targets = torch.tensor([[1.0, IGNORE, 0.75]])
    loss, acc = step_loss(logits, targets)
    p1 = 1 / (1 + math.exp(-1.0))  # p(right) at token 0
    want = (-math.log(p1) + -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert acc.item() == pytest.approx(0.5)  # token 0 right (p > .5, t = 1); token 2 wrong (p = .5, t = .75)
    with pytest.raises(ValueError, match="no labelled step"):
        step_loss(logits, torch.full((1, 3), IGNORE))


@pytest.mark.parametrize("ex, key", [
    (StepwiseExample("q", ["a", "b"], [True]), "'labels' has 1 labels for 2 steps"),
    (StepwiseExample("q", ["a", "  "], [True, True]), re.escape("'completions[1]' is an empty step")),
    (StepwiseExample("q", ["a;b", "c"], [True, True]), re.escape("'completions[0]' holds the step separator ';'")),
    (StepwiseExample("q", ["a", "b"], [True, 1.5]), r"'labels\[1\]' must be true/false or a share in \[0, 1\]"),
    (StepwiseExample("q", [], []), "'completions' is an empty list"),
])
def test_examples_a_prm_cannot_learn_from_are_refused_by_key(ex, key):
    with pytest.raises(ValueError, match="example 3: key " + key):
        check_example(ex, ";", "example 3")


def _stepwise_file(tmp_path, rows):
    f = tmp_path / "steps.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


GOOD = {"prompt": "1+1?", "completions": ["1+1=2", "A:2"], "labels": [True, True]}


@pytest.mark.parametrize("bad, key, problem", [
    ({"completions": ["1+1=2", "A:2"], "labels": [True]}, "'labels'", "has 1 labels for the 2 steps"),
    ({"completions": ["1+1=2", "", "A:2"], "labels": [True, True, True]}, "'completions[1]'", "is an empty step"),
    ({"completions": ["1+1=2;2*1=2", "A:2"], "labels": [True, True]}, "'completions[0]'",
     "holds the step separator ';'"),
    ({"labels": [True, 1]}, "'labels[1]'", "must be true or false"),
])
def test_a_bad_stepwise_file_names_file_line_and_key(tmp_path, bad, key, problem):
    from gcrm_kit.rm_training.process_data import read_stepwise_file

    f = _stepwise_file(tmp_path, [GOOD, {**GOOD, **bad}])
    with pytest.raises(DataError) as e:
        read_stepwise_file(str(f), ";")
    msg = str(e.value)
    assert str(f) in msg and "line 2" in msg and key in msg and problem in msg, msg


def test_a_good_stepwise_file_reads_as_examples(tmp_path):
    from gcrm_kit.rm_training.process_data import read_stepwise_file

    f = _stepwise_file(tmp_path, [GOOD, {**GOOD, "labels": [True, False]}])
    ex = read_stepwise_file(str(f), ";")
    assert [e.labels for e in ex] == [[True, True], [True, False]] and ex[0].steps == ["1+1=2", "A:2"]


def test_verifier_labels_are_right_before_the_first_wrong_step_and_wrong_from_it():
    recs = [GenerationRecord("3+7*2?", SOLUTION, False, "0", {"first_error_char": 6}),  # "0*2=0" is step 1
            GenerationRecord("1+1?", "1+1=2;A:2", True, "2", {"first_error_char": None}),
            GenerationRecord("1+1?", "1+1=2;A:3", False, "3", {"first_error_char": None})]  # only the answer
    ex, cost = prm_labels.verifier_step_labels(recs)
    assert [e.labels for e in ex] == [[True, False, False], [True, True], [True, False]]
    assert ex[0].steps == ["7+3=0", "0*2=0", "A:0"]
    assert (cost.source, cost.n_solutions, cost.n_steps, cost.policy_tokens) == ("verifier", 3, 7, 0)


def test_monte_carlo_labels_hard_soft_and_their_cost(monkeypatch, tokenizer):
    """Rollouts stood in: from "1+1=2;" two completions, one right; from "1+1=9;" both wrong."""
    canned = {"1+1*2?1+1=2;": (["2*2=4;A:4", "2*2=5;A:5"], [True, False]),
              "1+1*2?1+1=9;": (["9*2=8;A:8", "9*2=8;A:8"], [True, True])}
    asked = {}

    def fake(policy, tok, queries, n, **kw):
        asked.update(n=n, queries=list(queries))
        return [canned[q][0] for q in queries], [canned[q][1] for q in queries]

    monkeypatch.setattr(prm_labels, "sample_responses", fake)
    sols = [("1+1*2?", ["1+1=2", "2*2=4", "A:4"]), ("1+1*2?", ["1+1=9", "A:8"])]
    # the second step "2*2=4;" would be rolled out too: give it a canned answer
    canned["1+1*2?1+1=2;2*2=4;"] = (["A:4", "A:1"], [True, True])
    hard, cost = prm_labels.monte_carlo_step_labels(None, tokenizer, sols, 2)
    assert asked["n"] == 2 and len(asked["queries"]) == 3  # no rollout from the last step
    assert [e.labels for e in hard] == [[1.0, 1.0, 1.0], [0.0, 0.0]]
    soft, _ = prm_labels.monte_carlo_step_labels(None, tokenizer, sols, 2, soft=True)
    assert [e.labels for e in soft] == [[0.5, 0.5, 1.0], [0.0, 0.0]]
    # tokens: every completion's characters plus the EOS of those that ended with one
    want = sum(len(t) + int(f) for ts, fs in canned.values() for t, f in zip(ts, fs))
    assert (cost.rollouts, cost.policy_tokens, cost.n_steps, cost.n_rollouts) == (6, want, 5, 2)


def test_monte_carlo_labels_from_a_tiny_policy(tiny_policy_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    sols = [("1+1*2?", ["1+1=2", "2*2=4", "A:4"]), ("3+4?", ["3+4=7", "A:7"])]
    ex, cost = prm_labels.monte_carlo_step_labels(policy, tokenizer, sols, 3, soft=True, max_new_tokens=8)
    assert [len(e.labels) for e in ex] == [3, 2] and ex[0].labels[-1] == 1.0 and ex[1].labels[-1] == 1.0
    assert all(y in (0.0, 1 / 3, 2 / 3, 1.0) for e in ex for y in e.labels)
    assert cost.rollouts == 3 * 3 and 0 < cost.policy_tokens <= 3 * 3 * 9


def test_prm_step_scores_are_the_head_at_the_label_tokens(tiny_policy_dir, tokenizer):
    model, tok = prm_from_policy(tiny_policy_dir, ";", seed=0)
    model.eval()
    prompts, responses = ["3+7*2?", "1+1?", "2*2?"], [SOLUTION, "1+1=2;A:2", "2*2=4;;A:4"]
    got = prm_step_scores(model, tok, prompts, responses)
    assert [len(s) for s in got] == [3, 2, 3]  # an empty step is scored at its separator
    for p, r, s in zip(prompts, responses, got):
        enc, pos = step_positions(tok, p, r.split(";"), ";")
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([enc.input_ids])).logits[0]
        assert np.allclose(s, torch.softmax(logits, -1)[pos, 1].numpy(), atol=1e-5)
    # batching and steps given as a list change nothing
    one = prm_step_scores(model, tok, prompts, [r.split(";") for r in responses], batch_size=1)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(got, one))


@pytest.mark.parametrize("name", ["paper", "single_gpu", "toy", "smoke"])
def test_every_rm_params_file_accepts_a_process_reward_model(name):
    """The shipped params with a process reward model added: accepted on the toy world as they are, and on real
    data given a stepwise file (real preference pairs carry no step labels: refused without one, naming why)."""
    from pathlib import Path

    import yaml

    from gcrm_kit.params import ParamsError, RMTrainingParams, from_dict, load_params, step_separator_of, to_dict

    root = Path(__file__).resolve().parents[2]
    d = to_dict(load_params("01_rm_training", root / "params" / "01_rm_training" / f"{name}.yaml"))
    d["reward_models"] = d["reward_models"] + [{"name": "a_prm", "kind": "process"}]
    if d["data"]["kind"] == "real":
        with pytest.raises(ParamsError, match=r"a_prm.*process.data_file"):
            from_dict(RMTrainingParams, yaml.safe_load(yaml.safe_dump(d)))
        d["process"]["data_file"] = "steps.jsonl"
    p = from_dict(RMTrainingParams, d)
    assert p.reward_models[-1].kind == "process"
    assert step_separator_of(p) == (";" if p.data.kind == "toy" else "\n\n")
    with pytest.raises(ParamsError, match="trains on step labels alone"):
        from_dict(RMTrainingParams, {**d, "reward_models": [{"name": "x", "kind": "process",
                                                             "contrastive_weight": 0.5}]})


def test_a_bad_stepwise_file_stops_notebook_01_before_anything_is_trained_or_saved(tmp_path):
    """process.data_file with a bad row: build_process_data raises naming the file, line and key, and leaves no
    examples file in the run folder for a resumed run to train on."""
    from gcrm_kit.params import RMTrainingParams, from_dict
    from gcrm_kit.rm_training.process_data import EXAMPLES_FILE, build_process_data
    from gcrm_kit.runs import Run

    f = _stepwise_file(tmp_path, [GOOD, GOOD, {**GOOD, "completions": ["1+1=2", "A:2", "A:3"]}])
    p = from_dict(RMTrainingParams, {"reward_models": [{"name": "prm", "kind": "process"}],
                                     "process": {"data_file": str(f)}})
    run = Run(tmp_path / "run", "01_rm_training", p)
    where = f"{f}, row 3 (line 3): key 'labels' has 2 labels for the 3 steps"
    with pytest.raises(DataError, match=re.escape(where)):
        build_process_data(p, run, None)
    assert not (tmp_path / "run" / "data" / EXAMPLES_FILE).exists()


def _multichar_tokenizer():
    """Printable characters plus tokens "\\n\\n" and ".\\n" (as a BPE vocabulary merges them)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", "\n\n", ".\n"]
                                        + [chr(c) for c in range(32, 127)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n\n|\.\n|."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def test_step_labels_sit_on_a_multi_character_separator_token():
    tok = _multichar_tokenizer()
    enc, pos = step_positions(tok, "Q", ["x = 1", "so y = 2"], "\n\n")
    tokens = tok.convert_ids_to_tokens(enc.input_ids)
    assert [tokens[i] for i in pos] == ["\n\n", "</s>"] and tokens[pos[0] - 1] == "1"
    # a token merging a step's last character with the separator ("." + "\n") carries that step's label
    enc, pos = step_positions(tok, "Q", ["x = 1.", "y = 2."], "\n")
    tokens = tok.convert_ids_to_tokens(enc.input_ids)
    assert [tokens[i] for i in pos] == [".\n", "</s>"]
