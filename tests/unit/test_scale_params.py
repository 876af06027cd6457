"""The scale pieces of the params (model, lora, quant, distributed, data): defaults are the toy world's, bad
combinations are errors naming the keys; attention falls back with one message; DeepSpeed configs resolve."""

import json
from pathlib import Path

import pytest

from gcrm_kit.params import ParamsError, RMTrainingParams, RewardModelSpec, from_dict

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_toy_world():
    p = RMTrainingParams()
    assert p.data.kind == "toy" and not p.model.backbone and p.model.dtype == "float32"
    assert not p.lora.enabled and not p.quant.load_in_4bit and p.distributed.n_processes == 1


@pytest.mark.parametrize("data,match", [
    ({"quant": {"load_in_4bit": True}}, "needs lora.enabled"),
    ({"quant": {"load_in_4bit": True}, "lora": {"enabled": True}, "distributed": {"deepspeed": "zero3"}},
     "does not combine with distributed.deepspeed"),
    ({"model": {"backbone": "some/model"}}, "model.backbone is for real data"),
    ({"data": {"kind": "real"}}, "needs model.backbone"),
    ({"data": {"kind": "real"}, "model": {"backbone": "m"}}, "needs data.train.adapter"),
    ({"data": {"kind": "real", "train": {"adapter": "omi", "source": "x"}}, "model": {"backbone": "m"}},
     r"data\.train\.adapter: unknown adapter 'omi'"),
    ({"data": {"kind": "real", "train": {"adapter": "pairs", "source": "x"},
               "eval_sets": {"g": {"adapter": "gsm8k"}}}, "model": {"backbone": "m"}},
     r"data\.eval_sets\.g\.source: empty"),
    ({"distributed": {"launcher": "mpirun"}}, r"distributed\.launcher"),
    ({"model": {"dtype": "float16"}}, r"model\.dtype"),
])
def test_bad_scale_params_name_the_key(data, match):
    with pytest.raises(ParamsError, match=match):
        from_dict(RMTrainingParams, data)


def test_flash_attention_falls_back_with_one_message(capsys, monkeypatch):
    from gcrm_kit import models

    monkeypatch.setattr(models, "_ATTN_MESSAGE_SHOWN", False)
    monkeypatch.setattr(models.torch.cuda, "is_available", lambda: False)
    assert models.resolve_attn_implementation("flash_attention_2") is None
    assert models.resolve_attn_implementation("flash_attention_2") is None
    out = capsys.readouterr().out
    assert out.count("flash-attention 2 unavailable") == 1
    assert models.resolve_attn_implementation("sdpa") == "sdpa"
    assert models.resolve_attn_implementation("auto") is None  # on CPU: the default attention, quietly


def test_deepspeed_configs_resolve_and_zero3_gathers_on_save():
    from gcrm_kit.launch import deepspeed_config_path, launch_command

    for name, stage in (("zero2", 2), ("zero3", 3), ("zero3_offload", 3)):
        cfg = json.loads(deepspeed_config_path(name).read_text())
        assert cfg["zero_optimization"]["stage"] == stage
        if stage == 3:
            assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    with pytest.raises(FileNotFoundError, match="available: \\['zero2', 'zero3', 'zero3_offload'\\]"):
        deepspeed_config_path("zero4")
    assert "--nproc_per_node=8" in launch_command("torchrun", 8, "gcrm_kit.rm_training.worker", Path("j.json"), 1234)
    assert "--num_gpus=8" in launch_command("deepspeed", 8, "gcrm_kit.rm_training.worker", Path("j.json"), 1234,
                                          visible_devices="")


def test_memory_estimate_divides_by_zero_stage(tiny_policy_dir):
    from gcrm_kit.memory import estimate_memory

    one, _ = estimate_memory(RMTrainingParams(), tiny_policy_dir)
    z3, mode = estimate_memory(from_dict(RMTrainingParams, {"distributed": {"n_processes": 4, "deepspeed": "zero3"}}),
                               tiny_policy_dir)
    assert "ZeRO-3 over 4 processes" in mode
    assert z3.weights == pytest.approx(one.weights / 4) and z3.optimizer == pytest.approx(one.optimizer / 4)
    lora, _ = estimate_memory(from_dict(RMTrainingParams, {"lora": {"enabled": True, "r": 2}}), tiny_policy_dir)
    assert lora.n_trainable < one.n_trainable and lora.optimizer < one.optimizer
    # GRM: the LM head (vocab x hidden) is trained too; DPO's reference doubles the weights held
    cfg = json.loads((tiny_policy_dir / "config.json").read_text())
    vocab_h = cfg["vocab_size"] * cfg["hidden_size"]
    sft, mode = estimate_memory(RMTrainingParams(), tiny_policy_dir, RewardModelSpec("g", 0.0, 0.1, "sft"))
    assert "GRM-sft" in mode and sft.n_trainable == one.n_trainable + vocab_h
    dpo, mode = estimate_memory(RMTrainingParams(), tiny_policy_dir, RewardModelSpec("g", 0.0, 0.1, "dpo"))
    assert "frozen reference" in mode and dpo.weights == pytest.approx(2 * one.weights + 2 * 4 * vocab_h)


def test_failure_excerpt_keeps_the_workers_error_not_only_the_launchers_summary():
    from gcrm_kit.launch import failure_excerpt

    out = "\n".join(["step 1", "Traceback (most recent call last):", '  File "x.py", line 3, in f',
                     "RuntimeError: worker 1 ran out of memory", "Traceback (most recent call last):",
                     '  File "run.py", line 1028, in main'] + ["    frame"] * 40 +
                    ["torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", "=====",
                     "  rank      : 1 (local_rank: 1)", "  exitcode  : -6 (pid: 7)  (SIGABRT)", "  traceback : x"])
    text = failure_excerpt(out)
    assert "RuntimeError: worker 1 ran out of memory" in text
    assert "exitcode  : -6 (pid: 7)  (SIGABRT)" in text and "frame" not in text
    assert failure_excerpt("a\nb\n\nc", n_lines=2) == "b\nc"  # no launcher summary: the last lines
