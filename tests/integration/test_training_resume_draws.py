"""A resumed run draws the contrastive positions an uninterrupted run draws: the position generator's state is
saved in each checkpoint (one file per process) and restored on resume."""

import json

import pytest
import torch
from transformers import TrainerCallback

from gcrm_kit.data import PreferencePair
from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict


def _world(policy_dir, n=24):
    from gcrm_kit.rm_training import RMData

    pairs = [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                            f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(n)]
    return RMData(policy_dir, {}, pairs, pairs[:4], {})


def _params():
    return from_dict(RMTrainingParams, {
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-3}})


class _Record(TrainerCallback):
    """Records the draw generator's state after every step; raises at step `stop_at` (a simulated kill)."""

    def __init__(self, trainer, states, stop_at=None):
        self.trainer, self.states, self.stop_at = trainer, states, stop_at

    def on_step_end(self, args, state, control, **kw):
        self.states[state.global_step] = self.trainer._draw_generator.get_state().clone()
        if state.global_step == self.stop_at:
            raise KeyboardInterrupt("simulated kill")


def _train(monkeypatch, world, out, states, stop_at=None):
    from gcrm_kit import rm_training
    from gcrm_kit.training import RewardTrainer

    original_init = RewardTrainer.__init__

    def init(self, *a, **kw):
        original_init(self, *a, **kw)
        self.add_callback(_Record(self, states, stop_at))

    with monkeypatch.context() as m:
        m.setattr(RewardTrainer, "__init__", init)
        return rm_training.train_one_reward_model(_params(), world, RewardModelSpec("m", 0.5), 0, out)


def _contrastive(out):
    log = json.loads((out / "training_log.json").read_text())
    return {h["step"]: h["contrastive_loss"] for h in log if "contrastive_loss" in h}


def test_resumed_run_draws_the_positions_of_an_uninterrupted_run(tiny_policy_dir, tmp_path, monkeypatch):
    from gcrm_kit.training import DRAW_STATE_FILE

    world = _world(tiny_policy_dir)
    straight = {}
    _train(monkeypatch, world, tmp_path / "straight", straight)

    before, after = {}, {}
    with pytest.raises(KeyboardInterrupt):
        _train(monkeypatch, world, tmp_path / "resumed", before, stop_at=5)  # killed in step 5, saved at step 4
    ckpt = tmp_path / "resumed" / "checkpoints" / "checkpoint-4"
    saved = torch.load(ckpt / DRAW_STATE_FILE.format(rank=0), weights_only=True)
    assert torch.equal(saved["state"], straight[4])  # the state after step 4's draw, beside the checkpoint
    _train(monkeypatch, world, tmp_path / "resumed", after)

    assert sorted(after) == [5, 6]
    for step in (5, 6):
        assert torch.equal(after[step], straight[step]), step
    a, b = _contrastive(tmp_path / "straight"), _contrastive(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in (5, 6):
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
