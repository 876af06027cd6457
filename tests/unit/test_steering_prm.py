"""The process reward model as the guide of notebook 04's step-level beam search (`guided_prm`): the step score
it gives a candidate is `prm_step_scores`' probability of that step on the same text, in the search as by hand, and
a run without a PRM leaves the method out with the reason."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gcrm_kit import steering as S
from gcrm_kit.params import BeamParams, RewardModelSpec, RMTrainingParams, SteeringParams, from_dict
from gcrm_kit.prm import prm_from_policy, prm_step_scores


@pytest.fixture(scope="module")
def prm(tiny_policy_dir):
    model, tok = prm_from_policy(tiny_policy_dir, ";", seed=0)
    with torch.no_grad():
        model.score.weight.normal_()  # a head far from zero, so the probabilities differ from step to step
    return model.eval(), tok


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_the_step_score_is_prm_step_scores_on_the_same_text(prm):
    model, tok = prm
    prompt, steps = "3+7*2?", ["3+7=0;", "0*2=0;", "A:0"]
    want = prm_step_scores(model, tok, [prompt], ["".join(steps)])[0]
    scorer = S.PRMStepScorer(model, tok.pad_token_id)
    state = scorer.start([[tok.bos_token_id] + _ids(tok, prompt)])
    got = []
    for k, st in enumerate(steps):
        ids = _ids(tok, st) + ([tok.eos_token_id] if k == len(steps) - 1 else [])
        # beside the right candidate, a shorter one in the same batch: padding must not move the reading
        h, _, cand = scorer.extend(state, [0, 0], [ids, ids[:2]])
        got.append(float(S.prm_goal(h)[0]))
        state = scorer.select(cand, [0])
    assert np.allclose(got, want, atol=1e-5)
    assert scorer.tokens == sum(2 * (1 + len(prompt)) + 2 * len("".join(steps[:k])) + len(s) + 2 + (k == 2)
                                for k, s in enumerate(steps))


def test_the_beam_search_weighs_each_candidate_by_the_prm(prm, policy):
    model, tok = prm
    pol, _ = policy
    prompts, trace = ["1+2?", "3+1?"], []
    settings = BeamParams(beam_size=2, max_steps=3, max_step_tokens=6, confidence_ratio=math.inf)
    out = S.guided_decode(pol, tok, prompts, settings, S.PRMStepScorer(model, tok.pad_token_id), S.prm_goal,
                          seed=0, trace_prompts=(0,), trace=trace)
    assert len(out) == 2 and all(o.rm_tokens > 0 for o in out)  # no cache: prompt + prefix + step, every time
    checked = 0
    for c in (c for e in trace for c in e["candidates"]):
        text, step = c["prefix"], c["step"]
        if step.endswith(";"):  # read at its ';': the step before the empty one after it
            want = prm_step_scores(model, tok, [prompts[0]], [text + step])[0][-2]
        elif step.endswith(tok.eos_token):  # the last step, read at the EOS
            want = prm_step_scores(model, tok, [prompts[0]], [text + step[:-len(tok.eos_token)]])[0][-1]
        else:
            continue
        assert c["goal"] == pytest.approx(want, abs=1e-5)
        checked += 1
    assert checked > 0


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval(), AutoTokenizer.from_pretrained(tiny_policy_dir)


def test_without_a_prm_guided_prm_is_left_out_with_the_reason(tmp_path):
    rp = from_dict(RMTrainingParams, {"rm_seeds": [0]})
    rp.reward_models = [RewardModelSpec(name="baseline"), RewardModelSpec(name="goal_conditioned",
                                                                          contrastive_weight=0.5)]
    setup = SimpleNamespace(rm_params=rp, rm_run_dir=tmp_path, seeds=[0])
    guide, why = S.find_guide(from_dict(SteeringParams, {}), setup)
    assert guide is None and why.startswith("no reward model named or of role 'process'")
    guide, why = S.find_guide(from_dict(SteeringParams, {"prm": "baseline"}), setup)
    assert guide is None and why.endswith("is not a process reward model (role 'baseline')")
    assert S.find_guide(from_dict(SteeringParams, {"prm": ""}), setup) == (
        None, "prm is empty: no process reward model asked for")
