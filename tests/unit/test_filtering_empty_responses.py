"""Samples whose response is empty (the policy wrote its EOS at once) are read like any other by the frontier's
free signals: DeepConf reads the EOS's confidence, the probe the state after it."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gcrm_kit.confidence import policy_logprobs, token_confidence
from gcrm_kit.filtering.deepconf import eos_only_confidence
from gcrm_kit.filtering.probe import policy_states


def test_an_empty_response_is_its_eos(tiny_policy_dir):
    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    # the EOS read right after BOS + prompt
    conf = eos_only_confidence(policy, tok, "3+4?", k=5)
    ids = [tok.bos_token_id] + tok("3+4?", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        top = torch.log_softmax(policy(input_ids=torch.tensor([ids])).logits[0, -1], -1).topk(5).values
    assert conf.shape == (1,) and np.allclose(conf, token_confidence(top.numpy()[None]))
    # and a response's first token is predicted from the same position: its top-k agree with the EOS-only read
    lp = policy_logprobs(policy, tok, ["3+4?"], ["3+4=7;A:7"], k=5)[0]
    assert np.allclose(token_confidence(lp.top[:1]), conf, atol=1e-6)
    states = policy_states(policy, tok, ["3+4?", "3+4?"], ["", "3+4=7"], [True, True])
    assert states[0].shape[0] == 1 and states[1].shape[0] == len("3+4=7") + 1
    # the empty response's one state is the state after reading the EOS right after the prompt
    with torch.no_grad():
        hs = policy(input_ids=torch.tensor([ids + [tok.eos_token_id]]), output_hidden_states=True).hidden_states[-1]
    assert np.allclose(states[0][0], hs[0, -1].numpy(), atol=1e-5)
    assert policy_states(policy, tok, ["3+4?"], [""], [False])[0].shape[0] == 0
