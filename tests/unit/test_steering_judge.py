"""Steering with a pluggable judge and its compute accounting: every example is judged once per run however often
the stage asks (counting judge, whole comparison on tiny random models), a judge without a `correct` attribute
runs the comparison through (rates, gains, tables, figures), and the policy tokens processed (prompt/prefix tokens
every `generate` call encodes, plus the sampled ones) are counted exactly. Tiny random models (seconds)."""

from collections import Counter

import numpy as np
import pytest
import torch

from gcrm_kit import steering as S
from gcrm_kit.data import PreferencePair, save_jsonl
from gcrm_kit.params import BeamParams, SteeringParams, from_dict
from gcrm_kit.runs import Run
from gcrm_kit.toyworld import SPLITS, sample_problem


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval(), AutoTokenizer.from_pretrained(tiny_policy_dir)


class CountingJudge:
    """Scores without a `correct` attribute, and counts how often each (prompt, response) reaches it."""

    def __init__(self):
        self.seen: Counter = Counter()
        self.calls = 0

    def __call__(self, prompts, responses):
        self.calls += 1
        self.seen.update(zip(prompts, responses))
        return [{"even_length": float(len(r) % 2 == 0), "long": float(len(r) > 12)} for r in responses]


@pytest.fixture
def counting_judge():
    judge = CountingJudge()
    S.register_judge("counting_test", lambda: judge)
    yield judge
    S.JUDGES.pop("counting_test", None)


def _pairs(rng, n):
    out = []
    for _ in range(n):
        prob = sample_problem(rng, SPLITS["id"])
        sol = prob.solution()
        out.append(PreferencePair(prob.prompt, sol, sol + "1"))  # lengths of both parities
    return out


@pytest.fixture
def setup(tmp_path, tiny_policy_dir):
    """A SteeringSetup by hand: one reward model with two seeds (saved tiny checkpoints), toy prompts, labelled
    examples with duplicates, and held-out pairs for the diagnostics."""
    from gcrm_kit.models import reward_model_from_policy

    dirs = []
    for seed in (0, 1):
        model, tok = reward_model_from_policy(tiny_policy_dir, seed=seed)
        d = tmp_path / f"rm_seed{seed}"
        model.save_pretrained(d)
        tok.save_pretrained(d)
        dirs.append((seed, d))
    rng = np.random.default_rng(0)
    train, held = _pairs(rng, 8), _pairs(rng, 4)
    rm_run = tmp_path / "rm_run"
    save_jsonl(held, rm_run / "data" / "heldout_pairs.jsonl")
    labelled = [(x.prompt, r) for x in train for r in (x.chosen, x.rejected)]
    labelled += labelled[:3]  # an example listed twice is still judged once
    prompts = [sample_problem(rng, SPLITS["id"]).prompt for _ in range(3)]
    return S.SteeringSetup(rm_run, None, tiny_policy_dir, {"m": dirs}, prompts, labelled, torch.device("cpu"))


def _params(**kw):
    return from_dict(SteeringParams, {
        "reward_models": ["m"], "judge": "counting_test", "exact_oracle": False, "n_prompts": 3, "device": "cpu",
        "prototypes": [{"name": "even", "attribute": "even_length", "value": True},
                       {"name": "odd", "attribute": "even_length", "value": False},
                       {"name": "long", "attribute": "long", "value": True}],
        "targets": [{"name": "even_not_odd", "weights": {"even": 1.0, "odd": -1.0}, "aim": "even_length"},
                    {"name": "long", "weights": {"long": 1.0}, "aim": "long"}],
        "beam": {"beam_size": 2, "n_candidates": 2, "max_steps": 3, "max_step_tokens": 6}, **kw})


def test_every_example_is_judged_once_per_run(tmp_path, setup, counting_judge):
    p = _params()
    run = Run(tmp_path / "run", p.notebook, p)
    S.attribute_overview(p, setup)
    counts = S.label_counts(p, setup)
    assert counts["even"]["count"] + counts["odd"]["count"] == len(setup.labelled)
    model, tok = setup.load_reward_model("m", 0)
    a = S.build_prototypes(p, setup, model, tok, "m", 0)
    b = S.build_prototypes(p, setup, model, tok, "m", 0, labels=S.label_table(p, setup))
    assert torch.equal(a["even"].vector, b["even"].vector)
    S.check_cache(p, setup, n_prompts=2)
    S.worked_example(p, setup)
    result = S.compare_methods(p, run, setup)  # prototypes and diagnostics for every seed, every method's answers
    S.label_counts(p, setup)
    assert counting_judge.seen, "the registered judge was never called"
    assert max(counting_judge.seen.values()) == 1, [k for k, v in counting_judge.seen.items() if v > 1]
    assert set(setup.labelled) <= set(counting_judge.seen)
    assert len(setup.judges["counting_test"].scores) == len(counting_judge.seen)

    # a judge without `correct`: rates, gains, tables and figures use the attributes it has
    assert not any("rate_correct" in r for r in result.rows)
    assert S.reported_attributes(p, result) == ["even_length", "long"]
    assert len(result.gains) == 4 * len(p.targets)
    for g in result.gains:
        assert "correct" not in g and g["attributes"] == [g["aim"]] and g["aim"] in g
        assert np.isfinite(g["policy_tokens_processed_ratio"])
    table = S.results_table(result, S.reported_attributes(p, result))
    assert {"even_length", "long", "policy tok/prompt", "policy tok processed/prompt"} <= set(table.columns)
    gains = S.gains_table(result)
    assert "correct gain (pts)" not in gains.columns and "policy tokens processed ×" in gains.columns
    figs = S.save_figures(run, result, [t.aim for t in p.targets])
    assert {"steering_rates", "steering_compute", "steering_gains"} <= set(figs)
    # without a `correct` attribute the gains figure has the aim panel only
    assert len({t.xaxis for t in figs["steering_gains"].data}) == 1
    assert (run.dir / "figures" / "steering_rates.html").is_file()

    # processed >= sampled for every method; the step-level decoders re-encode their prefixes, so much more
    for r in result.rows:
        assert r["policy_tokens_processed"] > r["policy_tokens"] > 0
    for e in result.summary:
        assert "policy_tokens_processed" in e
    # the prototypes of every seed are saved (with provenance) in run/prototypes/<rm>_seed<k>/, no folder deeper
    for seed in setup.seeds:
        d = run.dir / "prototypes" / f"m_seed{seed}"
        assert {x.name for x in d.iterdir()} == {"even.pt", "even.json", "odd.pt", "odd.json", "long.pt", "long.json"}


def test_judge_must_score_the_aims(setup, counting_judge):
    p = _params(targets=[{"name": "t", "weights": {"even": 1.0}, "aim": "correct"}])
    with pytest.raises(KeyError, match="no attribute 'correct' to aim at"):
        S.label_table(p, setup)


def test_cached_judge_asks_once_per_distinct_example():
    judge = CountingJudge()
    cached = S.CachedJudge(judge, "c")
    out = cached(["q1", "q1", "q2"], ["a", "a", "b"])
    assert judge.calls == 1 and judge.seen == Counter({("q1", "a"): 1, ("q2", "b"): 1})
    assert out[0] == out[1] and out[0] is not out[1]  # equal scores, separate dicts
    again = cached(["q2", "q3"], ["b", "ccc"])
    assert judge.calls == 2 and judge.seen[("q3", "ccc")] == 1 and judge.seen[("q2", "b")] == 1
    assert again[0] == out[2]
    cached(["q1"], ["a"])
    assert judge.calls == 2  # nothing new: the wrapped judge is not called


def test_gains_without_correct_in_the_rows():
    rows = []
    for seed, (plain, guided) in enumerate([(0.5, 0.7), (0.6, 0.6)]):
        base = {"reward_model": "", "target": "", "seed": seed, "rate_x": plain, "policy_tokens": 10.0,
                "rm_tokens": 0.0, "seconds": 1.0}
        rows.append({"method": "plain", **base})
        rows.append({"method": "beam_policy_only", **base})
        for method, target in (("best_of_n", ""), ("best_of_n_goal", "t")):
            rows.append({**base, "method": method, "reward_model": "m", "target": target})
        rows.append({"method": "guided", "reward_model": "m", "target": "t", "seed": seed, "rate_x": guided,
                     "policy_tokens": 30.0, "rm_tokens": 20.0, "seconds": 4.0})
    target = from_dict(SteeringParams, {}).targets[0]
    target.name, target.aim = "t", "x"
    gains = {g["baseline"]: g for g in S.guided_gains(rows, [target])}
    assert set(gains) == {"plain", "best_of_n", "best_of_n_goal", "beam_policy_only"}
    assert gains["plain"]["x"]["gain_points"]["mean"] == pytest.approx(10.0)
    assert "correct" not in gains["plain"] and "policy_tokens_processed_ratio" not in gains["plain"]


def _record_generate(monkeypatch, pol):
    """Wrap `pol.generate` to add up the real (unpadded) input tokens of every call."""
    seen = {"prefix_tokens": 0, "calls": 0}
    inner = pol.generate

    def generate(*args, **kw):
        seen["prefix_tokens"] += int(kw["attention_mask"].sum())
        seen["calls"] += 1
        return inner(*args, **kw)

    monkeypatch.setattr(pol, "generate", generate)
    return seen


def test_policy_tokens_processed_one_step_by_hand(policy, monkeypatch):
    pol, tok = policy
    seen = _record_generate(monkeypatch, pol)
    prompt = "1+2?"
    n_prompt = 1 + len(tok(prompt, add_special_tokens=False)["input_ids"])  # BOS + prompt
    settings = BeamParams(beam_size=2, n_candidates=2, max_steps=1, max_step_tokens=5)
    d = S.guided_decode(pol, tok, [prompt], settings, seed=0)[0]
    # one live beam at the first step: it samples max(2, 2 * beam_size / 1) = 4 candidates, each re-encoding
    # BOS + prompt, so the prompt is processed 4 times beside the tokens sampled
    assert seen["calls"] == 1 and seen["prefix_tokens"] == 4 * n_prompt
    assert d.policy_tokens_processed == 4 * n_prompt + d.policy_tokens
    assert 4 <= d.policy_tokens <= 4 * 5


def test_policy_tokens_processed_count_every_generate_call(policy, monkeypatch):
    pol, tok = policy
    seen = _record_generate(monkeypatch, pol)
    prompts = ["1+2?", "3*4-1?", "7 plus 3 times 2?"]
    settings = BeamParams(beam_size=3, n_candidates=2, max_steps=4, max_step_tokens=6)
    dec = S.guided_decode(pol, tok, prompts, settings, seed=1)
    assert seen["calls"] >= 2  # several steps, each re-encoding every live beam's prefix
    assert sum(d.policy_tokens_processed for d in dec) == seen["prefix_tokens"] + sum(d.policy_tokens for d in dec)
    assert all(d.policy_tokens_processed > d.policy_tokens for d in dec)


def test_sample_solutions_processed_counts_each_prompt_encoding(policy, monkeypatch):
    pol, tok = policy
    seen = _record_generate(monkeypatch, pol)
    prompts = ["1+2?", "3*4-1?"]
    s = S.sample_solutions(pol, tok, prompts, 3, 1.0, 10, seed=0)
    for q, t, proc in zip(prompts, s.policy_tokens, s.policy_tokens_processed):
        assert proc == t + 3 * (1 + len(tok(q, add_special_tokens=False)["input_ids"]))
    assert sum(s.policy_tokens_processed) - sum(s.policy_tokens) == seen["prefix_tokens"]
