"""Goal-guided decoding: the reward model's cache gives the same states as re-scoring the whole sequence, the
goal term and the step score by hand, beam selection, step sampling, the toy attributes and the exact process
value, the gains arithmetic, and SteeringParams validation. Tiny random models only (seconds)."""

import math

import numpy as np
import pytest
import torch

from gcrm_kit import steering as S
from gcrm_kit.data import Encoded, pad_batch
from gcrm_kit.models import reward_forward, reward_model_from_policy
from gcrm_kit.params import BeamParams, ParamsError, SteeringParams, from_dict
from gcrm_kit.qvalues import Prototype
from gcrm_kit.toyworld import Problem
from gcrm_kit.toyworld.attributes import prefix_error_free, score_attributes


@pytest.fixture(scope="module")
def rm(tiny_policy_dir):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    with torch.no_grad():
        model.score.weight.normal_()
    return model.eval(), tok


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval(), AutoTokenizer.from_pretrained(tiny_policy_dir)


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _full_states(model, seqs: list[list[int]], step_lens: list[int], pooling: str) -> torch.Tensor:
    """Reference: run each whole sequence (no cache) and pool its last `step_len` tokens."""
    b = pad_batch([Encoded(s, len(s)) for s in seqs], model.config.pad_token_id)
    with torch.no_grad():
        h = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"]).hidden
    out = []
    for i, (s, k) in enumerate(zip(seqs, step_lens)):
        out.append(h[i, len(s) - 1] if pooling == "last" else h[i, len(s) - k:len(s)].mean(0))
    return torch.stack(out)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_cached_scores_equal_full_rescoring(rm, pooling):
    model, tok = rm
    bos, eos = tok.bos_token_id, tok.eos_token_id
    prompts = [[bos] + _ids(tok, q) for q in ("1+2?", "3*4-1+5?", "7 plus 3 times 2?")]
    cached = S.ContextScorer(model, use_cache=True, pooling=pooling)
    full = S.ContextScorer(model, use_cache=False, pooling=pooling)
    sc, sf = cached.start(prompts), full.start(prompts)
    # three rounds of candidates of uneven lengths (holes in the cache), rows repeated and dropped between rounds
    rounds = [([0, 0, 1, 2, 2], ["1+2=3;", "1+2=4;", "3*4=2;", "7+3=0;", "7+3=1;"], [0, 2, 3]),
              ([0, 1, 1, 2], ["A:3", "2-1=1;", "2-1=11;", "0*2=0;"], [1, 2, 3]),
              ([0, 1, 2], ["1+5=6;", "1+5=7;", "A:0"], [0, 1, 2])]
    for rows, texts, keep in rounds:
        steps = [_ids(tok, t) + ([eos] if t.startswith("A:") else []) for t in texts]
        hc, rc, sc2 = cached.extend(sc, rows, steps)
        hf, rf, sf2 = full.extend(sf, rows, steps)
        ref = _full_states(model, [sc.ids[r] + st for r, st in zip(rows, steps)], [len(st) for st in steps], pooling)
        assert torch.allclose(hc, ref, atol=1e-5) and torch.allclose(hf, ref, atol=1e-5)
        assert torch.allclose(rc, rf, atol=1e-5)
        sc, sf = cached.select(sc2, keep), full.select(sf2, keep)
        assert sc.ids == sf.ids
    assert cached.tokens < full.tokens  # the prefix is run once, not at every step


def test_guided_decode_same_with_and_without_cache(policy, rm):
    pol, tok = policy
    model, _ = rm
    proto = Prototype("g", torch.randn(model.config.hidden_size))
    goal = S.GoalTerm.from_prototypes("g", {"g": proto}, {"g": 1.0})
    prompts = ["1+2?", "3*4-1?", "7 plus 3 times 2?"]
    settings = BeamParams(beam_size=3, max_steps=4, max_step_tokens=6, confidence_ratio=1.0)
    a = S.guided_decode(pol, tok, prompts, settings, S.ContextScorer(model, True), goal, seed=3)
    b = S.guided_decode(pol, tok, prompts, settings, S.ContextScorer(model, False), goal, seed=3)
    assert [x.response for x in a] == [y.response for y in b]
    assert max(abs(x.score - y.score) for x, y in zip(a, b)) < 1e-5
    assert sum(x.rm_tokens for x in a) < sum(y.rm_tokens for y in b)
    assert all(x.policy_tokens == y.policy_tokens > 0 for x, y in zip(a, b))


def test_goal_term_by_hand():
    g1, g2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.6, 0.8, 0.0])
    goal = S.GoalTerm.from_prototypes("t", {"a": Prototype("a", g1), "b": Prototype("b", g2)}, {"a": 1.0, "b": -1.0})
    h = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    assert torch.allclose(goal(h), torch.tensor([(1.0 - 0.6) / 2, 0.0]))
    with pytest.raises(KeyError, match="no prototype"):
        S.GoalTerm.from_prototypes("t", {"a": Prototype("a", g1)}, {"c": 1.0})


def test_goal_ratio_and_step_score():
    assert S.goal_ratio(0.0) == 0.5 and S.goal_ratio(math.inf) == 1.0 and S.goal_ratio(-math.inf) == 0.0
    assert S.goal_ratio(1.0) == pytest.approx(2 / 3) and S.goal_ratio(-1.0) == pytest.approx(1 / 3)
    assert S.goal_ratio(5000.0) == 1.0 and S.goal_ratio(-5000.0) == 0.0  # no overflow
    lp, g = torch.tensor([math.log(0.8)]), torch.tensor([0.2])  # c = 0.6
    assert S.step_log_score(lp, g, 0.5).item() == pytest.approx(0.5 * math.log(0.6) + 0.5 * math.log(0.8))
    assert S.step_log_score(lp, g, 0.0).item() == pytest.approx(math.log(0.8))


def test_beam_score_aggregations_by_hand():
    lps, goals, r = [math.log(0.9), math.log(0.5)], [0.0, 0.6], 0.5
    b = S.Beam(0, [[1], [2]], lps, goals, r=r, aggregation="step")
    steps = [r * math.log((1 + g) / 2) + (1 - r) * lp for lp, g in zip(lps, goals)]
    assert b.score == pytest.approx(np.mean(steps))
    b.aggregation = "latest"
    assert b.score == pytest.approx(r * math.log(0.8) + (1 - r) * np.mean(lps))


def test_select_beams_greedy_and_sampled():
    pool = [S.Beam(0, [[1]], [math.log(p)], [0.0]) for p in (0.1, 0.9, 0.5, 0.7)]
    kept = S.select_beams(pool, 2, 0.0, np.random.default_rng(0))
    assert [math.exp(b.score) for b in kept] == pytest.approx([0.9, 0.7])
    rng = np.random.default_rng(0)
    draws = [S.select_beams(pool, 2, 1.0, rng) for _ in range(200)]
    assert all(len({id(b) for b in d}) == 2 for d in draws)  # without replacement
    assert any(pool[0] in d for d in draws)  # the temperature lets a weak beam through sometimes


def test_sample_steps_stop_at_a_step_and_report_the_policys_logprob(policy):
    pol, tok = policy
    semi = _ids(tok, ";")[0]
    prefixes = [[tok.bos_token_id] + _ids(tok, q) for q in ("1+2?", "3*4-1+5?")]
    torch.manual_seed(0)
    steps = S.sample_steps(pol, tok, prefixes, [3, 2], 1.0, 5)
    assert len(steps) == 5
    owners = [0, 0, 0, 1, 1]
    for st, o in zip(steps, owners):
        assert 1 <= len(st.ids) <= 5
        stops = [k for k, t in enumerate(st.ids) if t in (semi, tok.eos_token_id)]
        assert stops == ([len(st.ids) - 1] if st.complete else [])
        # the reported log-probability is the policy's own (temperature 1), recomputed here by a forward pass
        ids = torch.tensor([prefixes[o] + st.ids])
        with torch.no_grad():
            logp = torch.log_softmax(pol(ids).logits[0, :-1].float(), -1)
        n = len(prefixes[o])
        ref = sum(logp[n - 1 + k, t].item() for k, t in enumerate(st.ids))
        assert st.logprob == pytest.approx(ref, abs=1e-4)


def test_step_delimiter_must_be_one_token(policy):
    _, tok = policy
    with pytest.raises(ValueError, match="single token"):
        S.step_stop_ids(tok, ";;")


def test_toy_attributes_and_prefix_values():
    prob = Problem(7, (("+", 3), ("*", 2), ("-", 5)))  # 0, 0, 5
    good, bad = prob.solution(), "7+3=0;0*2=0;0-5=4;A:4"
    assert score_attributes(prob.prompt, good) == {"correct": True, "error_free": True, "even_answer": False,
                                                   "high_answer": True, "well_formed": True}
    assert score_attributes(prob.prompt, bad, ["correct", "even_answer", "high_answer"]) == {
        "correct": False, "even_answer": True, "high_answer": False}
    assert not score_attributes(prob.prompt, "7+3=0;A:x")["even_answer"]
    with pytest.raises(KeyError, match="unknown toy attribute"):
        score_attributes(prob.prompt, good, ["helpful"])
    assert prefix_error_free(prob, "7+3=0;0*2=0;", False)
    assert prefix_error_free(prob, "7+3=0;0*2", False)  # an unfinished step is not judged yet
    assert not prefix_error_free(prob, "7+3=0;0*2=1;", False)
    assert prefix_error_free(prob, good, True) and not prefix_error_free(prob, bad, True)


def test_exact_oracle_steers_a_random_policy_no_worse(policy):
    pol, tok = policy
    prompts = ["1+2?", "3+1?"]
    settings = BeamParams(beam_size=2, max_steps=3, max_step_tokens=6, confidence_ratio=math.inf)
    out = S.guided_decode(pol, tok, prompts, settings, S.ExactPrefixScorer(tok), S.exact_goal, seed=0)
    assert len(out) == 2 and all(o.rm_tokens == 0 for o in out)


def test_gains_are_paired_by_seed():
    rows = []
    for seed, (plain, guided, bon) in enumerate([(0.5, 0.7, 0.6), (0.6, 0.6, 0.6)]):
        base = {"policy_tokens": 10.0, "rm_tokens": 0.0, "seconds": 1.0}
        rows.append({"method": "plain", "reward_model": "", "target": "", "seed": seed, "rate_correct": plain, **base})
        rows.append({"method": "beam_policy_only", "reward_model": "", "target": "", "seed": seed,
                     "rate_correct": plain, **base})
        rows.append({"method": "best_of_n", "reward_model": "m", "target": "", "seed": seed, "rate_correct": bon,
                     "policy_tokens": 30.0, "rm_tokens": 40.0, "seconds": 2.0})
        rows.append({"method": "best_of_n_goal", "reward_model": "m", "target": "t", "seed": seed,
                     "rate_correct": bon, "policy_tokens": 30.0, "rm_tokens": 40.0, "seconds": 2.0})
        rows.append({"method": "guided", "reward_model": "m", "target": "t", "seed": seed, "rate_correct": guided,
                     "policy_tokens": 30.0, "rm_tokens": 20.0, "seconds": 4.0})
    targets = [from_dict(SteeringParams, {}).targets[0]]
    targets[0].name = "t"
    gains = {g["baseline"]: g for g in S.guided_gains(rows, targets)}
    over_plain = gains["plain"]["correct"]
    assert over_plain["gain_points"]["mean"] == pytest.approx(10.0)
    assert over_plain["gain_points"]["std"] == pytest.approx(np.std([20.0, 0.0], ddof=1))
    assert over_plain["gain_relative_pct"]["mean"] == pytest.approx(np.mean([40.0, 0.0]))
    assert gains["plain"]["policy_tokens_ratio"] == pytest.approx(3.0)
    assert gains["best_of_n"]["total_tokens_ratio"] == pytest.approx(50 / 70)
    assert gains["best_of_n"]["correct"]["gain_points"]["mean"] == pytest.approx(5.0)


@pytest.mark.parametrize("data,match", [
    ({"targets": [{"name": "t", "weights": {"helpful": 1.0}}]}, r"unknown prototype\(s\) \['helpful'\]"),
    ({"targets": [{"name": "t", "weights": {"correct": 0.0}}]}, r"non-zero weight"),
    ({"prototypes": [{"name": "a"}, {"name": "a"}]}, r"distinct"),
    ({"beam": {"beam_size": 0}}, r"beam\.beam_size"),
    ({"beam": {"goal_aggregation": "sum"}}, r"beam\.goal_aggregation"),
    ({"split": "gsm_hard"}, r"unknown split"),
    ({"reward_models": []}, r"reward_models"),
])
def test_bad_steering_params_name_the_key(data, match):
    with pytest.raises(ParamsError, match=match):
        from_dict(SteeringParams, data)
