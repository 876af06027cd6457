"""Notebook 01's reward-model training under the launcher: two CPU processes over gloo with DeepSpeed ZeRO-3.
A run killed mid-way resumes from its last checkpoint; the checkpoint saved under ZeRO-3 (weights gathered) loads
with plain transformers in one process and gives the rewards the trained, partitioned model gave."""

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("deepspeed")

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def _world(policy_dir, n=16):
    from gcrm_kit.data import PreferencePair
    from gcrm_kit.rm_training import RMData

    pairs = [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                            f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(n)]
    return RMData(Path(policy_dir), {}, pairs, pairs[:4], {})


def test_zero3_two_processes_kill_resume_and_reload(tiny_policy_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from gcrm_kit.data import encode, pad_batch
    from gcrm_kit.launch import LaunchError
    from gcrm_kit.models import reward_forward, reward_model_from_policy
    from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict
    from gcrm_kit.rm_training import train_one_reward_model

    p = from_dict(RMTrainingParams, {
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 2, "epochs": 1, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-3},
        "distributed": {"n_processes": 2, "launcher": "torchrun", "deepspeed": "zero3"}})
    world = _world(tiny_policy_dir)  # 16 pairs / (2 per process x 2 processes) = 4 steps
    out = tmp_path / "rm"
    spec = RewardModelSpec("goal_conditioned", 0.5)

    monkeypatch.setenv("PYTHONPATH", str(HERE / "kill_hook"))
    monkeypatch.setenv("GCRM_TEST_KILL_AT_STEP", "3")
    with pytest.raises(LaunchError, match="exited with code"):
        train_one_reward_model(p, world, spec, 0, out)
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert ckpt.is_dir() and not (out / "SAVED").exists()
    assert any(ckpt.glob("global_step*")), "a DeepSpeed checkpoint (partitioned states) was saved at step 2"

    monkeypatch.delenv("GCRM_TEST_KILL_AT_STEP")
    train_one_reward_model(p, world, spec, 0, out)
    log = json.loads((out / "training_log.json").read_text())
    steps = [h["step"] for h in log if "bt_loss" in h]
    assert steps == [1, 2, 3, 4]  # 1-2 restored with the checkpoint's state, 3-4 trained after the resume
    assert all("contrastive_loss" in h for h in log if "bt_loss" in h)
    launch_log = (out / "launch" / "fit_reward_model.log").read_text()
    assert launch_log.count("$ ") == 2 and "torch.distributed.run" in launch_log  # both launches, one log

    # the gathered checkpoint: full-size weights, loadable by plain transformers in this one process
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.score.weight.shape == (1, 32) and model.score.weight.abs().sum() > 0
    saved = json.loads((out / "rewards_at_save.json").read_text())
    tok = AutoTokenizer.from_pretrained(out)
    b = pad_batch([encode(tok, pr, r) for pr, r in zip(saved["prompts"], saved["responses"])], tok.pad_token_id)
    with torch.no_grad():
        r = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"]).rewards
    assert torch.allclose(r, torch.tensor(saved["rewards"]), atol=1e-5)
    check = json.loads((out / "checkpoint_check.json").read_text())
    assert check["ok"] and check["n"] == 8
    assert (out / "DONE").is_file() and (out / "prototypes" / "correct.pt").is_file()
    assert not (out / "checkpoints").exists()
    # the head was trained: it moved away from its initialisation
    init, _ = reward_model_from_policy(tiny_policy_dir, seed=0)
    assert not torch.allclose(init.score.weight, model.score.weight)


def test_zero3_grm_with_contrastive_trains_and_saves_full_lm_head(tiny_policy_dir, tmp_path):
    """GRM-DPO with the contrastive term under ZeRO-3: the frozen reference stays whole in every process (it is
    not the engine's model), the LM head companion is gathered to its full size, the checkpoint stays plain."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict
    from gcrm_kit.rm_training import train_one_reward_model

    p = from_dict(RMTrainingParams, {
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 2, "epochs": 1, "logging_steps": 1, "learning_rate": 1e-3},
        "distributed": {"n_processes": 2, "launcher": "torchrun", "deepspeed": "zero3"}})
    out = tmp_path / "rm"
    spec = RewardModelSpec("grm", contrastive_weight=0.5, grm_weight=0.1, grm_regulariser="dpo")
    train_one_reward_model(p, _world(tiny_policy_dir), spec, 0, out)
    log = json.loads((out / "training_log.json").read_text())
    steps = [h for h in log if "bt_loss" in h]
    assert [h["step"] for h in steps] == [1, 2, 3, 4]
    assert all("grm_loss" in h and "contrastive_loss" in h for h in steps)
    # before the first update the reward model's states and LM head are the reference's: DPO's margin is 0 and
    # its loss log 2; a reference or head that lost weights to the partitioning would give something else
    assert steps[0]["grm_loss"] == pytest.approx(math.log(2), abs=1e-5)
    head = load_file(str(out / "grm_lm_head.safetensors"))["weight"]
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    assert head.shape == policy.lm_head.weight.shape
    assert not torch.allclose(head, policy.lm_head.weight)  # trained (full fine-tune), not a copy left as it was
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert not any("grm" in k for k in model.state_dict())
    check = json.loads((out / "checkpoint_check.json").read_text())
    assert check["ok"]
