"""Fixtures shared by the integration tier's online-pruning tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def models(tiny_policy_dir):
    """The tiny random policy, its tokenizer, a reward model made from it (eval mode) and a random goal prototype:
    (policy, tokenizer, reward model, goal vector)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gcrm_kit.models import reward_model_from_policy

    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy_dir)
    rm, _ = reward_model_from_policy(tiny_policy_dir, seed=0)
    rm.eval()
    torch.manual_seed(1)
    goal = torch.randn(policy.config.hidden_size)
    return policy, tokenizer, rm, goal
