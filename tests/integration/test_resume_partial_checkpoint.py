"""A run killed while the Trainer writes a checkpoint resumes from the complete one before it, for reward models and
for the toy policy alike: the kill is simulated inside the save itself (after the weights, optimiser and scheduler
are written, before the RNG state and trainer_state.json), as a real kill part-way through the save leaves it."""

import json
import logging

import pytest
from transformers import Trainer, TrainingArguments

from gcrm_kit.data import PreferencePair
from gcrm_kit.params import PolicyParams, RMTrainingParams, RewardModelSpec, WorldParams, from_dict


def _kill_during_save_at(monkeypatch, step):
    """Make the Trainer's checkpoint save at global step `step` die part-way (a KeyboardInterrupt, as a kill)."""
    original = Trainer._save_rng_state

    def save_rng_state(self, output_dir):
        if self.state.global_step == step:
            raise KeyboardInterrupt("simulated kill while saving a checkpoint")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", save_rng_state)


def _skipped_and_resumed(caplog, skipped, resumed):
    text = caplog.text
    assert f"skipped {skipped}" in text and "trainer_state.json missing" in text and "rng_state.pth missing" in text
    assert f"resuming from {resumed.name}" in text


def test_reward_model_resumes_past_a_cut_off_checkpoint(tiny_policy_dir, tmp_path, monkeypatch, caplog):
    from gcrm_kit.rm_training import RMData, train_one_reward_model

    pairs = [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                            f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(24)]
    world = RMData(tiny_policy_dir, {}, pairs, pairs[:4], {})
    p = from_dict(RMTrainingParams, {"contrastive": {"n_positive": 4, "n_negative": 4}, "training": {
        "batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-3}})
    spec = RewardModelSpec("m", 0.5)
    out = tmp_path / "rm"
    with monkeypatch.context() as m:
        _kill_during_save_at(m, 6)
        with pytest.raises(KeyboardInterrupt):
            train_one_reward_model(p, world, spec, 0, out)
    ckpts = out / "checkpoints"
    partial, complete = ckpts / "checkpoint-6", ckpts / "checkpoint-4"
    assert (partial / "model.safetensors").is_file() and not (partial / "trainer_state.json").exists()
    assert (complete / "trainer_state.json").is_file()

    with caplog.at_level(logging.INFO, logger="gcrm_kit.training"):
        train_one_reward_model(p, world, spec, 0, out)
    _skipped_and_resumed(caplog, partial, complete)
    log = json.loads((out / "training_log.json").read_text())
    assert [h["step"] for h in log if "bt_loss" in h] == [1, 2, 3, 4, 5, 6]  # 1-4 restored, 5-6 run again
    assert (out / "DONE").is_file()


def test_policy_resumes_past_a_cut_off_checkpoint(tmp_path, monkeypatch, caplog):
    from gcrm_kit.toyworld import policy as policy_module

    world = WorldParams(corpus_size=16)
    pol = PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, epochs=1, batch_size=4)
    # the policy saves every 200 steps; a checkpoint every 2 steps keeps this run at 4 steps
    monkeypatch.setattr(policy_module, "TrainingArguments", lambda **kw: TrainingArguments(**{**kw, "save_steps": 2}))
    out = tmp_path / "policy"
    with monkeypatch.context() as m:
        _kill_during_save_at(m, 4)
        with pytest.raises(KeyboardInterrupt):
            policy_module.train_policy(world, pol, 0, out)
    partial, complete = out / "checkpoints" / "checkpoint-4", out / "checkpoints" / "checkpoint-2"
    assert partial.is_dir() and not (partial / "trainer_state.json").exists()

    with caplog.at_level(logging.INFO, logger="gcrm_kit.training"):
        policy_module.train_policy(world, pol, 0, out)
    _skipped_and_resumed(caplog, partial, complete)
    log = json.loads((out / "training_log.json").read_text())
    assert log[-1]["step"] == 4 and (out / "model.safetensors").is_file()
