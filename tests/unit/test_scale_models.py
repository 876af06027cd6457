"""Loading at scale: the requested dtype is the loaded dtype whatever the checkpoint's own (transformers 5 defaults
to dtype="auto"); flash-attention 2 is used only when it imports and the model runs in 16 bits, else one message."""

import sys

import pytest
import torch

from gcrm_kit.params import ModelParams


@pytest.fixture(scope="module")
def bf16_policy_dir(tiny_policy_dir, tmp_path_factory):
    from transformers import AutoTokenizer, LlamaForCausalLM

    d = tmp_path_factory.mktemp("policy_bf16")
    LlamaForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.float32).to(torch.bfloat16).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_policy_dir).save_pretrained(d)
    return d


def test_float32_request_on_a_bf16_checkpoint_loads_float32(bf16_policy_dir):
    import json

    from gcrm_kit.models import frozen_policy, reward_model_from_policy

    assert json.loads((bf16_policy_dir / "config.json").read_text())["dtype"] == "bfloat16"
    rm, _ = reward_model_from_policy(bf16_policy_dir, seed=0, model_params=ModelParams(dtype="float32"))
    assert {p.dtype for p in rm.parameters()} == {torch.float32}
    ref = frozen_policy(bf16_policy_dir, model_params=ModelParams(dtype="float32"))
    assert {p.dtype for p in ref.parameters()} == {torch.float32}
    rm16, _ = reward_model_from_policy(bf16_policy_dir, seed=0, model_params=ModelParams(dtype="bfloat16"))
    assert {p.dtype for p in rm16.parameters()} == {torch.bfloat16}
    plain, _ = reward_model_from_policy(bf16_policy_dir, seed=0)  # no model params (the toy world): float32
    assert {p.dtype for p in plain.parameters()} == {torch.float32}


def test_load_kwargs_always_name_the_dtype():
    from gcrm_kit.models import _load_kwargs

    assert _load_kwargs(ModelParams(dtype="float32"))["dtype"] is torch.float32
    assert _load_kwargs(ModelParams(dtype="bfloat16"))["dtype"] is torch.bfloat16
    assert _load_kwargs()["dtype"] is torch.float32


@pytest.fixture
def gpu(monkeypatch):
    from gcrm_kit import models

    monkeypatch.setattr(models, "_ATTN_MESSAGE_SHOWN", False)
    monkeypatch.setattr(models.torch.cuda, "is_available", lambda: True)
    return models


def test_flash_attention_needs_16_bits(gpu, monkeypatch, capsys):
    monkeypatch.setattr(gpu, "flash_attn_error", lambda: None)  # flash_attn imports
    assert gpu.resolve_attn_implementation("flash_attention_2", "bfloat16") == "flash_attention_2"
    assert gpu.resolve_attn_implementation("auto", "bfloat16") == "flash_attention_2"
    assert capsys.readouterr().out == ""
    assert gpu.resolve_attn_implementation("flash_attention_2", "float32") is None
    assert gpu.resolve_attn_implementation("auto", "float32") is None
    out = capsys.readouterr().out
    assert out.count("flash-attention 2 unavailable") == 1 and "model.dtype is float32" in out
    assert gpu.resolve_attn_implementation("sdpa", "float32") == "sdpa"


def test_flash_attention_that_does_not_import_falls_back(gpu, monkeypatch, capsys):
    monkeypatch.setattr(gpu, "flash_attn_error", lambda: "the flash_attn package does not import (OSError: x)")
    assert gpu.resolve_attn_implementation("flash_attention_2", "bfloat16") is None
    assert gpu.resolve_attn_implementation("auto", "bfloat16") is None
    out = capsys.readouterr().out
    assert out.count("flash-attention 2 unavailable") == 1 and "does not import (OSError: x)" in out


def test_flash_attn_error_imports_the_package(monkeypatch, tmp_path):
    from gcrm_kit.models import flash_attn_error

    # found by find_spec, but its compiled part does not load: caught by importing it
    pkg = tmp_path / "flash_attn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise OSError('flash_attn_2_cuda.so: undefined symbol: _ZN3c10')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    msg = flash_attn_error()
    assert msg.startswith("the flash_attn package does not import (OSError: ") and "undefined symbol" in msg
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import flash_attn raises ModuleNotFoundError
    assert flash_attn_error() == "the flash_attn package is not installed"
    monkeypatch.delitem(sys.modules, "flash_attn")
    (pkg / "__init__.py").write_text("")
    assert flash_attn_error() is None
    monkeypatch.delitem(sys.modules, "flash_attn")
