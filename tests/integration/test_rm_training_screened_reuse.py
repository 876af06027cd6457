"""Training pairs are encoded once per run: the world's screened pairs (`RMData.screened`) are reused by training,
the prototype and the evaluation, and a reward model trained from them has exactly the weights of one that encodes
its pairs itself; and the optional `torch.compile` switch of reward-model training. Tiny models, a few steps."""

import pytest
import torch
from safetensors.torch import load_file

from gcrm_kit.data import PreferencePair
from gcrm_kit.params import RMTrainingParams, RewardModelSpec, from_dict
from gcrm_kit.rm_training import fit as rm_fit
from gcrm_kit.rm_training import screening
from gcrm_kit.rm_training.screening import ScreenedPairs, screen_pairs, screening_tokenizer

pytestmark = pytest.mark.slow


def _pairs(n=12):
    return [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                           f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(n)]


def _params(tmp_path):
    return from_dict(RMTrainingParams, {
        "output_root": str(tmp_path / "out"), "params_name": "reuse", "rm_seeds": [0],
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 2, "logging_steps": 1, "save_steps": 100, "max_length": 40}})


def test_screened_pairs_are_reused_only_for_the_same_pairs_tokenizer_and_length(tiny_policy_dir, tokenizer):
    p = _params(tiny_policy_dir)
    tok = screening_tokenizer(p, tiny_policy_dir)
    pairs = _pairs()
    enc, kept, _ = screen_pairs(tok, pairs, 40)
    screened = ScreenedPairs.of(tok, kept, enc, 40)
    again = screened.reuse(screening_tokenizer(p, tiny_policy_dir), pairs[:5], 40)  # a fresh, identical tokenizer
    assert again is not None and again[0] == enc[:5] and again[2].as_dict() == {"kept": 5, "skipped": {}}
    assert screened.reuse(tok, pairs[:5], 30) is None                       # another max_length
    assert screened.reuse(tok, _pairs()[:5], 40) is None                    # equal text, other pair objects
    other = screening_tokenizer(p, tiny_policy_dir)
    other.add_tokens(["+1"])                                                # encodes "+1" differently
    assert screened.reuse(other, pairs[:5], 40) is None


def test_a_model_trained_from_screened_pairs_equals_one_that_encodes_them(tiny_policy_dir, tmp_path, monkeypatch):
    p = _params(tmp_path)
    spec = RewardModelSpec(name="goal_conditioned", contrastive_weight=0.5)
    pairs = _pairs()
    tok = screening_tokenizer(p, tiny_policy_dir)
    enc, kept, _ = screen_pairs(tok, pairs, p.training.max_length)
    screened = ScreenedPairs.of(tok, kept, enc, p.training.max_length)

    rm_fit.fit_reward_model(p, tiny_policy_dir, pairs, spec, 0, tmp_path / "encodes")
    calls = []
    real = screening.encode_pairs
    monkeypatch.setattr(screening, "encode_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    rm_fit.fit_reward_model(p, tiny_policy_dir, pairs, spec, 0, tmp_path / "reuses", screened)
    assert calls == []  # nothing encoded again
    a = load_file(str(tmp_path / "encodes" / "model.safetensors"))
    b = load_file(str(tmp_path / "reuses" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("encoding.json", "rewards_at_save.json"):
        assert (tmp_path / "encodes" / name).read_text() == (tmp_path / "reuses" / name).read_text()


def test_torch_compile_is_off_by_default_and_reaches_the_trainer_when_asked(tmp_path):
    p = _params(tmp_path)
    assert rm_fit.reward_training_args(p, tmp_path, 0).torch_compile is False
    on = from_dict(RMTrainingParams, {"params_name": "reuse", "output_root": str(tmp_path),
                                      "training": {"torch_compile": True}})
    assert rm_fit.reward_training_args(on, tmp_path, 0).torch_compile is True
