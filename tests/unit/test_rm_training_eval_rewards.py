"""Notebook 01's evaluation reads the reward at the EOS and at the response's last token from one forward pass: the
first equals `models.score` exactly, the second `score(..., eos=False)` up to float round-off. Tiny random model."""

import torch

from gcrm_kit.models import reward_model_from_policy, score
from gcrm_kit.rm_training.evaluate import rewards_with_and_without_eos


def test_one_pass_gives_the_rewards_of_both_scorings(tiny_policy_dir):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    with torch.no_grad():
        model.score.weight.normal_()
    prompts = ["1+2?", "3*4-1+5?", "7 plus 3 times 2?", "2+2?", "9-3?"]
    responses = ["1+2=3;A:3", "3*4=2;2-1=1;1+5=6;A:6", "3*2=6;7+6=3;A:3", "A:4", "9-3=6;A:6"]
    at_eos, before = rewards_with_and_without_eos(model, tok, prompts, responses, batch_size=2)
    assert torch.equal(at_eos, score(model, tok, prompts, responses, batch_size=2))
    no_eos = score(model, tok, prompts, responses, batch_size=2, eos=False)
    assert torch.allclose(before, no_eos, atol=1e-5) and not torch.allclose(before, at_eos, atol=1e-3)
