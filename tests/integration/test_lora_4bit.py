"""Single-GPU modes on CPU: LoRA (peft) and 4-bit (bitsandbytes nf4) + LoRA training steps on a tiny model, with the
scalar head trained in full and saved with the adapter; the merged checkpoint keeps the head; the reloaded adapter
and the merged model give the rewards the trained model gave."""

import json
import math

import pytest
import torch

pytestmark = [pytest.mark.scale, pytest.mark.slow]


@pytest.fixture(scope="module")
def policy64(tmp_path_factory, tokenizer):
    """A tiny Llama whose widths are multiples of bitsandbytes' 4-bit block size (64)."""
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("policy64")
    cfg = llama_config(PolicyParams(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128), tokenizer)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


def _world(policy_dir, n=16):
    from gcrm_kit.data import PreferencePair
    from gcrm_kit.rm_training import RMData

    pairs = [PreferencePair(f"{i % 10}+1?", f"{i % 10}+1={(i + 1) % 10};A:{(i + 1) % 10}",
                            f"{i % 10}+1={(i + 2) % 10};A:{(i + 2) % 10}") for i in range(n)]
    return RMData(policy_dir, {}, pairs, pairs[:4], {})


def _params(quant: bool):
    from gcrm_kit.params import RMTrainingParams, from_dict

    return from_dict(RMTrainingParams, {
        "contrastive": {"n_positive": 4, "n_negative": 4},
        "training": {"batch_size": 4, "epochs": 1, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-2},
        "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
        "quant": {"load_in_4bit": quant, "compute_dtype": "float32"}})


@pytest.mark.parametrize("quant", [False, True], ids=["lora", "4bit_lora"])
def test_lora_training_saves_adapter_with_head_and_merges(policy64, tmp_path, quant, capsys):
    if quant:
        pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from gcrm_kit.models import load_reward_adapter, load_reward_model, reward_model_from_policy, score
    from gcrm_kit.params import RewardModelSpec
    from gcrm_kit.rm_training import train_one_reward_model

    p = _params(quant)
    world = _world(policy64)
    out = train_one_reward_model(p, world, RewardModelSpec("goal_conditioned", 0.5), 0, tmp_path / "rm")
    assert "estimated memory per device" in capsys.readouterr().out
    log = json.loads((out / "training_log.json").read_text())
    assert [h["step"] for h in log if "bt_loss" in h] == [1, 2, 3, 4]

    # the adapter folder holds the LoRA weights and the whole trained head
    adapter = out / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert "score" in cfg["modules_to_save"] and cfg["r"] == 4
    from safetensors.torch import load_file

    keys = load_file(adapter / "adapter_model.safetensors").keys()
    assert any("lora_A" in k for k in keys) and any("score" in k and "lora" not in k for k in keys)

    saved = json.loads((out / "rewards_at_save.json").read_text())
    want = torch.tensor(saved["rewards"])
    # 1. the base plus the reloaded adapter (4-bit again when trained in 4-bit): the trained model's rewards
    m, tok = load_reward_adapter(adapter, policy64, quant=p.quant)
    assert isinstance(m, PeftModel)
    assert torch.allclose(score(m, tok, saved["prompts"], saved["responses"]), want, atol=1e-5)
    # 2. the merged plain checkpoint keeps the trained head; with 4-bit it is the dequantised base + adapter, equal
    #    up to the 4-bit kernels' rounding
    merged, tok = load_reward_model(out)
    assert not hasattr(merged, "peft_config")
    got = score(merged, tok, saved["prompts"], saved["responses"])
    assert torch.allclose(got, want, atol=2e-3 if quant else 1e-5), (got - want).abs().max()
    init, _ = reward_model_from_policy(policy64, seed=0)
    assert not torch.allclose(merged.score.weight, init.score.weight)  # the head was trained and kept
    assert torch.allclose(AutoModelForSequenceClassification.from_pretrained(out).score.weight, merged.score.weight)
    check = json.loads((out / "checkpoint_check.json").read_text())
    assert check["ok"] and (out / "DONE").is_file()


def test_lora_trains_only_adapters_and_head(policy64):
    from gcrm_kit.models import reward_model_from_policy

    p = _params(False)
    model, _ = reward_model_from_policy(policy64, seed=0, model_params=p.model, lora=p.lora, quant=p.quant)
    trainable = [n for n, q in model.named_parameters() if q.requires_grad]
    assert trainable and all("lora_" in n or "score" in n for n in trainable)
    assert any("score" in n for n in trainable)


def test_4bit_backbone_is_nf4_and_head_is_not_quantised(policy64):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from gcrm_kit.models import reward_model_from_policy

    p = _params(True)
    model, _ = reward_model_from_policy(policy64, seed=0, model_params=p.model, lora=p.lora, quant=p.quant)
    base = model.get_base_model()
    q = base.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.quant_type == "nf4"
    assert not isinstance(base.score.original_module, bnb.nn.Linear4bit)


@pytest.mark.parametrize("quant", [False, True], ids=["lora", "4bit_lora"])
def test_lora_with_grm_keeps_the_lm_head_untouched(policy64, tmp_path, quant):
    """GRM under LoRA (and 4 bits, where the DPO reference is loaded in 4 bits too): the LM head rides along
    frozen (only adapters and the reward head train), the regulariser is logged, and the saved head equals the
    policy's."""
    if quant:
        pytest.importorskip("bitsandbytes")
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from gcrm_kit.params import RewardModelSpec
    from gcrm_kit.rm_training import train_one_reward_model

    spec = RewardModelSpec("grm", contrastive_weight=0.5, grm_weight=0.1, grm_regulariser="dpo")
    out = train_one_reward_model(_params(quant), _world(policy64), spec, 0, tmp_path / "rm")
    log = json.loads((out / "training_log.json").read_text())
    steps = [h for h in log if "grm_loss" in h]
    assert steps
    # LoRA starts as the identity and the frozen head is the policy's: at the first step the reward model's
    # log-probs equal the reference's, so DPO's loss is log 2 (in 4 bits within the kernels' rounding)
    assert steps[0]["grm_loss"] == pytest.approx(math.log(2), abs=1e-3 if quant else 1e-5)
    head = load_file(str(out / "grm_lm_head.safetensors"))["weight"]
    assert torch.equal(head, AutoModelForCausalLM.from_pretrained(policy64).lm_head.weight.detach())
