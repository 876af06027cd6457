"""Shared fixtures. Tiers: unit/ (pure functions, seconds), integration/ (tiny models trained for a few steps),
notebooks/ (papermill smoke runs of every notebook with its smoke.yaml), benchmarks/ (not collected by default).
Everything runs on CPU with tiny models and makes its own data; nothing is loaded from a hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

collect_ignore = ["benchmarks"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer():
    from gcrm_kit.toyworld import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, tokenizer):
    """A randomly initialised 2-layer Llama policy saved as a standard checkpoint (no training)."""
    from transformers import LlamaForCausalLM

    from gcrm_kit.params import PolicyParams
    from gcrm_kit.toyworld.policy import llama_config

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("policy")
    cfg = llama_config(PolicyParams(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tokenizer)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture
def fake_rm_run():
    """A maker of finished notebook-01 run folders as rm_runs reads them (params.resolved.yaml, metrics.json and each
    model's rm_spec.json, no weights): `make(root, specs, params_name)` with `specs` a list of RewardModelSpec and
    rm seeds 0 and 1; returns the run folder."""
    import json

    from gcrm_kit.params import RMTrainingParams, dump_yaml, from_dict

    def make(root: Path, specs, params_name: str) -> Path:
        run = root / "01_rm_training" / params_name / "run"
        p01 = from_dict(RMTrainingParams, {"rm_seeds": [0, 1]})
        p01.reward_models = list(specs)
        run.mkdir(parents=True)
        (run / "params.resolved.yaml").write_text(dump_yaml(p01))
        (run / "metrics.json").write_text("{}")
        for s in specs:
            for k in p01.rm_seeds:
                d = run / "reward_models" / f"{s.name}_seed{k}"
                d.mkdir(parents=True)
                (d / "rm_spec.json").write_text(json.dumps({"policy_dir": str(root / "policy")}))
        return run

    return make
