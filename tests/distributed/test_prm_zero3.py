"""Notebook 01's process reward model (`kind: process`, verifier labels) under the launcher: two CPU processes over
gloo with DeepSpeed ZeRO-3, the launcher the outcome models use. The run finishes, the checkpoint (weights
gathered) loads with plain `transformers.AutoModelForTokenClassification`, its softmax at each step's separator
is what the kit's reader (`prm_step_scores`) gives and what the partitioned model gave in training, and the
2-process model is the 1-process model trained on the same data with the same global batch."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("deepspeed")

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SAME_MODEL_ATOL = 1e-4
"""2 processes x 2 examples against 1 process x 4 examples, float32: the same batches and updates, only the order
of floating-point sums differs (the gradient mean over processes, ZeRO-3's partitioned reductions); a run that
lost a label column, a batch or a weight shard differs by orders of magnitude more"""


def _world_and_data(policy_dir, n=8):
    """n training pairs of 2-step toy solutions, labelled by the verifier: the chosen side right at both steps, the
    rejected side right at its first step (even i: the answer step is wrong) or wrong from its first (odd i). Every
    solution has 2 labelled steps, so each process's mean loss over its steps averages to the 1-process one."""
    from gcrm_kit.data import GenerationRecord, PreferencePair
    from gcrm_kit.prm_labels import verifier_step_labels
    from gcrm_kit.rm_training import RMData
    from gcrm_kit.rm_training.process_data import ProcessData
    from gcrm_kit.toyworld.problems import parse_prompt, verify

    pairs, recs, index = [], [], []
    for i in range(n):
        a = i % 10
        prompt = f"{a}+1?"
        right = f"{a}+1={(a + 1) % 10};A:{(a + 1) % 10}"
        wrong = (f"{a}+1={(a + 1) % 10};A:{(a + 3) % 10}" if i % 2 == 0 else
                 f"{a}+1={(a + 2) % 10};A:{(a + 2) % 10}")
        pairs.append(PreferencePair(prompt, right, wrong))
        for response in (right, wrong):
            v = verify(parse_prompt(prompt), response)
            recs.append(GenerationRecord(prompt, response, v.is_correct, str(v.answer),
                                         {"first_error_char": v.first_error_char}))
            index.append(i)
    examples, cost = verifier_step_labels(recs)
    assert [e.labels for e in examples[:4]] == [[True, True], [True, False], [True, True], [False, False]]
    return RMData(Path(policy_dir), {}, pairs, pairs[:4], {}), ProcessData(examples, index, ";", cost.as_dict())


def _params(n_processes, batch_size):
    from gcrm_kit.params import RMTrainingParams, from_dict

    dist = {"n_processes": 2, "launcher": "torchrun", "deepspeed": "zero3"} if n_processes > 1 else {}
    return from_dict(RMTrainingParams, {
        "reward_models": [{"name": "prm", "kind": "process"}],
        "training": {"batch_size": batch_size, "epochs": 1, "logging_steps": 1, "save_steps": 100,
                     "learning_rate": 3e-3},
        "device": "cpu", "distributed": dist})


def test_zero3_process_reward_model_two_processes_match_one(tiny_policy_dir, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from gcrm_kit.prm import prm_from_policy, prm_step_scores
    from gcrm_kit.rm_training.process_fit import train_one_process_model

    world, data = _world_and_data(tiny_policy_dir)  # 16 examples / (2 per process x 2 processes) = 4 steps
    p2 = _params(2, 2)
    spec = p2.reward_models[0]
    out2 = train_one_process_model(p2, world, data, spec, 0, tmp_path / "prm_2proc")
    launch_log = (out2 / "launch" / "fit_process_model.log").read_text()
    assert "torch.distributed.run" in launch_log and "nproc_per_node=2" in launch_log
    assert (out2 / "DONE").is_file() and not (out2 / "checkpoints").exists()
    log2 = json.loads((out2 / "training_log.json").read_text())
    assert [h["step"] for h in log2 if "loss" in h] == [1, 2, 3, 4]
    assert all("step_accuracy" in h for h in log2 if "loss" in h)
    check = json.loads((out2 / "checkpoint_check.json").read_text())
    assert check["ok"] and check["n"] == 4, check

    # the gathered checkpoint: full-size weights, loadable by plain transformers in this one process
    model = AutoModelForTokenClassification.from_pretrained(out2).eval()
    tok = AutoTokenizer.from_pretrained(out2)
    assert model.config.num_labels == 2 and model.config.step_separator == ";"
    assert model.score.weight.shape == (2, 32)
    init, _ = prm_from_policy(tiny_policy_dir, ";", seed=0)
    assert not torch.allclose(init.score.weight, model.score.weight)  # trained, not the initial head
    # its softmax at the separators and the EOS, by hand, is the kit's reader, and is what the partitioned model gave
    saved = json.loads((out2 / "scores_at_save.json").read_text())
    kit = prm_step_scores(model, tok, saved["prompts"], saved["steps"])
    sep_id = tok.convert_tokens_to_ids(";")
    for prompt, steps, k, s in zip(saved["prompts"], saved["steps"], kit, saved["scores"]):
        enc = tok(prompt, ";".join(steps), return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(model(**enc).logits[0], -1)[:, 1]
        ids = enc["input_ids"][0].tolist()
        at = [i for i, t in enumerate(ids) if t == sep_id] + [len(ids) - 1]
        assert np.allclose(k, probs[at].numpy(), atol=1e-5)
        assert np.allclose(k, s, atol=1e-5)

    # the same data and global batch in one process (no launcher, no DeepSpeed): the same model
    out1 = train_one_process_model(_params(1, 4), world, data, spec, 0, tmp_path / "prm_1proc")
    log1 = json.loads((out1 / "training_log.json").read_text())
    assert [h["step"] for h in log1 if "loss" in h] == [1, 2, 3, 4]
    for key in ("loss", "step_accuracy"):  # the log is over both processes' batches, not the main one's alone
        assert np.allclose([h[key] for h in log2 if "loss" in h], [h[key] for h in log1 if "loss" in h],
                           atol=SAME_MODEL_ATOL), key
    one = AutoModelForTokenClassification.from_pretrained(out1).state_dict()
    two = model.state_dict()
    assert one.keys() == two.keys()
    diff = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert diff <= SAME_MODEL_ATOL, f"largest weight difference {diff:.3g}"
    ex = data.examples
    s1 = prm_step_scores(AutoModelForTokenClassification.from_pretrained(out1).eval(), tok,
                         [e.prompt for e in ex], [e.steps for e in ex])
    s2 = prm_step_scores(model, tok, [e.prompt for e in ex], [e.steps for e in ex])
    assert max(float(np.abs(a - b).max()) for a, b in zip(s1, s2)) <= SAME_MODEL_ATOL
