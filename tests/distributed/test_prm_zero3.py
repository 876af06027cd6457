"""Notebook 01's process reward model (`kind: process`, verifier labels) under the launcher: two CPU processes over
gloo with DeepSpeed ZeRO-3, the launcher the outcome models use. A run killed mid-way resumes from its last
checkpoint and finishes, the checkpoint (weights gathered) loads with plain
`transformers.AutoModelForTokenClassification`, its softmax at each step's separator is what the kit's reader
(`prm_step_scores`) gives and what the partitioned model gave in training, and the killed-and-resumed 2-process model
is the 1-process model trained without a break on the same data with the same global batch. The run uses the paper's
launcher settings (the deepspeed launcher, gradient accumulation, gradient checkpointing)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("deepspeed")

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).resolve().parent

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


def _params(batch_size, save_steps=100, model=None, **distributed):
    from gcrm_kit.params import RMTrainingParams, from_dict

    dist = {"n_processes": 2, "launcher": "torchrun", "deepspeed": "zero3", **distributed} if distributed else {}
    return from_dict(RMTrainingParams, {
        "reward_models": [{"name": "prm", "kind": "process"}],
        "training": {"batch_size": batch_size, "epochs": 1, "logging_steps": 1, "save_steps": save_steps,
                     "learning_rate": 3e-3},
        "device": "cpu", "distributed": dist, "model": model or {}})


@pytest.fixture(scope="module")
def one_process(tiny_policy_dir, tmp_path_factory):
    """The data, and the PRM trained on it in one process with a global batch of 4 (no launcher, no DeepSpeed)."""
    from gcrm_kit.rm_training.process_fit import train_one_process_model

    world, data = _world_and_data(tiny_policy_dir)  # 16 examples / 4 per step = 4 steps
    p = _params(4)
    out = train_one_process_model(p, world, data, p.reward_models[0], 0, tmp_path_factory.mktemp("prm") / "one")
    log = json.loads((out / "training_log.json").read_text())
    assert [h["step"] for h in log if "loss" in h] == [1, 2, 3, 4]
    return world, data, out


def _assert_same_model(out, one, examples):
    """The launched run's log (loss and step_accuracy, over both processes' batches, not the main one's alone),
    weights and per-step scores of every example equal the 1-process run's within SAME_MODEL_ATOL."""
    from transformers import AutoModelForTokenClassification

    from gcrm_kit.prm import load_prm, prm_step_scores

    logs = [[h for h in json.loads((d / "training_log.json").read_text()) if "loss" in h] for d in (out, one)]
    for key in ("loss", "step_accuracy"):
        assert np.allclose([h[key] for h in logs[0]], [h[key] for h in logs[1]], atol=SAME_MODEL_ATOL), key
    a = AutoModelForTokenClassification.from_pretrained(out).state_dict()
    b = AutoModelForTokenClassification.from_pretrained(one).state_dict()
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff <= SAME_MODEL_ATOL, f"largest weight difference {diff:.3g}"
    (m1, tok), (m2, _) = load_prm(out), load_prm(one)
    prompts, steps = [e.prompt for e in examples], [e.steps for e in examples]
    s1, s2 = prm_step_scores(m1, tok, prompts, steps), prm_step_scores(m2, tok, prompts, steps)
    assert max(float(np.abs(x - y).max()) for x, y in zip(s1, s2)) <= SAME_MODEL_ATOL


def test_zero3_process_reward_model_kill_resume_reload_and_match_one_process(tiny_policy_dir, one_process, tmp_path,
                                                                             monkeypatch):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from gcrm_kit.launch import LaunchError
    from gcrm_kit.prm import prm_from_policy, prm_step_scores
    from gcrm_kit.rm_training.process_fit import train_one_process_model

    # paper.yaml's launcher settings: the deepspeed launcher, 2 micro-batches of 1 example per process accumulated per
    # step, gradient checkpointing; 16 examples / (1 x 2 micro-batches x 2 processes) = 4 steps, as in one process
    world, data, one = one_process
    p2 = _params(1, save_steps=2, model={"gradient_checkpointing": True}, launcher="deepspeed",
                 gradient_accumulation_steps=2)
    spec = p2.reward_models[0]
    out = tmp_path / "prm_2proc"
    monkeypatch.setenv("PYTHONPATH", str(HERE / "kill_hook"))
    monkeypatch.setenv("GCRM_TEST_KILL_AT_STEP", "3")
    with pytest.raises(LaunchError, match="exited with code"):
        train_one_process_model(p2, world, data, spec, 0, out)
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert ckpt.is_dir() and not (out / "SAVED").exists()
    assert any(ckpt.glob("global_step*")), "a DeepSpeed checkpoint (partitioned states) was saved at step 2"

    monkeypatch.delenv("GCRM_TEST_KILL_AT_STEP")
    out2 = train_one_process_model(p2, world, data, spec, 0, out)
    launch_log = (out2 / "launch" / "fit_process_model.log").read_text()
    assert launch_log.count("$ ") == 2 and "deepspeed.launcher.runner" in launch_log  # both launches, one log
    # the steps each launch logged: 1-2 before the kill, 3-4 after the resume (a fresh start would log 1-4 again)
    assert launch_log.count("'step_accuracy'") == 4
    assert (out2 / "DONE").is_file() and not (out2 / "checkpoints").exists()
    log2 = json.loads((out2 / "training_log.json").read_text())
    assert [h["step"] for h in log2 if "loss" in h] == [1, 2, 3, 4]  # 1-2 from the checkpoint, 3-4 after
    assert all("step_accuracy" in h for h in log2 if "loss" in h)
    check = json.loads((out2 / "checkpoint_check.json").read_text())
    assert check["ok"] and check["n"] == 4, check
    assert json.loads((out2 / "rm_spec.json").read_text())["distributed"]["gradient_accumulation_steps"] == 2

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

    # the same data and global batch in one process, without a break: the same model
    _assert_same_model(out2, one, data.examples)
