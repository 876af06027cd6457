"""The confident-errors options of the toy world (toyworld.misconceptions, WorldParams.misconception_rates, the
`hard` split): the verifier finds a misconception's first wrong step, a misconception solution looks like a right
one, the corpus writes misconceptions at their rates, `hard` is harder, the world of slips (params `slips`) writes
the corpus it wrote before the options existed, and the default world is the world of confident errors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gcrm_kit.params import ParamsError, PolicyParams, WorldParams, load_params, to_dict
from gcrm_kit.toyworld import (MISCONCEPTIONS, SPLITS, Problem, SlipModel, SplitSpec, build_corpus, first_biting_step,
                               misconception_solution, noisy_solution, parse_prompt, sample_problem, strip_marks,
                               verify)
from gcrm_kit.toyworld.misconceptions import applicable
from gcrm_kit.toyworld.policy import make_corpus, policy_cache_key

ROOT = Path(__file__).resolve().parents[2]

STEP = re.compile(r"^\d[+\-*%]\d=\d$")
#: the default rates (WorldParams.misconception_rates)
CONFIDENT = {"minus_abs": 0.7, "plus_carry": 0.6, "times_tens": 0.6, "mod_quotient": 0.6}


def test_misconception_solution_by_hand_and_its_first_wrong_step():
    prob = Problem(8, (("-", 3), ("+", 1), ("-", 9), ("*", 2)))  # right: 5, 6, 7, 4
    text = misconception_solution(prob, ["minus_abs"])
    # 8-3 does not bite (|8-3| = 5 is right); 6-9 does: |6-9| = 3, right 7; the later step carries the 3 on
    assert text == "8-3=5;5+1=6;6-9=3;3*2=6;A:6"
    v = verify(prob, text)
    assert v.well_formed and not v.is_correct and v.first_error_step == 2
    assert text[v.first_error_char:].startswith("6-9=3")
    assert first_biting_step(prob, ["minus_abs"]) == 2
    assert misconception_solution(prob, ["plus_carry"]) == prob.solution()  # 5+1 never passes 9
    assert first_biting_step(prob, ["plus_carry"]) is None
    assert misconception_solution(Problem(7, (("+", 5), ("*", 8))), ["plus_carry", "times_tens"]) == "7+5=3;3*8=2;A:2"
    assert misconception_solution(Problem(9, (("%", 4),)), ["mod_quotient"]) == "9%4=2;A:2"


@pytest.mark.parametrize("name", sorted(MISCONCEPTIONS))
def test_verifier_marks_the_first_step_where_the_misconception_changes_the_value(name):
    """Checked against the first step whose text differs from the right solution's, over many problems."""
    rng = np.random.default_rng(3)
    bites = 0
    for _ in range(300):
        prob = sample_problem(rng, SPLITS["new_operator"])
        wrong, right = misconception_solution(prob, [name]).split(";"), prob.solution().split(";")
        differs = next((i for i, (a, b) in enumerate(zip(wrong[:-1], right[:-1])) if a != b), None)
        v = verify(prob, ";".join(wrong))
        assert v.first_error_step == differs == first_biting_step(prob, [name])
        if differs is not None:
            bites += 1
            assert v.first_error_char == sum(len(s) + 1 for s in wrong[:differs])
    assert bites > 30  # each misconception bites on a fair share of problems, so the check above means something


@pytest.mark.parametrize("split", ["id", "hard", "new_operator", "verbal"])
def test_misconception_solution_has_the_surface_of_a_right_one(split):
    """Same step format, same question operators and operands, same length; the texts differ only in digits, so no
    token but a result's value gives the misconception away."""
    rng = np.random.default_rng(4)
    for _ in range(200):
        prob = sample_problem(rng, SPLITS[split])
        wrong, right = misconception_solution(prob, sorted(MISCONCEPTIONS)), prob.solution()
        v = verify(prob, wrong)
        assert v.well_formed and v.n_steps == len(prob.steps)
        steps = wrong.split(";")[:-1]
        assert all(STEP.match(s) for s in steps)
        assert [(s[1], int(s[2])) for s in steps] == list(prob.steps)
        assert len(wrong) == len(right) and set(wrong) <= set("0123456789+-*%=;A:")
        assert all(a == b or (a.isdigit() and b.isdigit()) for a, b in zip(wrong, right))


def test_corpus_writes_each_misconception_at_its_rate_and_keeps_to_it():
    """Without slips every solution is either the right one or the misconception one (never a mix within a
    solution: one draw per solution); among problems where it bites, the share held matches its type's rate, and a
    type without a rate never errs."""
    mixture = [(SplitSpec(3, 5, "-"), 1.0), (SplitSpec(3, 5, "+"), 1.0), (SplitSpec(3, 5, "*"), 1.0)]
    rates = {"minus_abs": 0.7, "plus_carry": 0.2}
    corpus = build_corpus(np.random.default_rng(5), mixture, 4500, SlipModel(0.0, 0.25), 0.0, 0.0, "step", rates)
    held = {"-": [], "+": [], "*": []}
    for prompt, text, _ in corpus:
        prob = parse_prompt(prompt)
        op = prob.steps[0][0]
        name = next((n for n, m in MISCONCEPTIONS.items() if m.operator == op and n in rates), None)
        if name is None or first_biting_step(prob, [name]) is None:
            assert text == prob.solution()
            continue
        assert text in (prob.solution(), misconception_solution(prob, [name]))
        held[op].append(text != prob.solution())
    assert len(held["-"]) > 600 and len(held["+"]) > 600 and not held["*"]
    assert abs(np.mean(held["-"]) - 0.7) < 0.05
    assert abs(np.mean(held["+"]) - 0.2) < 0.05


@pytest.mark.parametrize("style, expected", [("step", "3+4=7;7-9=2!;2*2=4;A:4"), ("state", "3+4=7;7-9=2!;2*2=4!;A:4")])
def test_misconception_steps_are_marked_and_judged_like_any_wrong_step(style, expected):
    prob = Problem(3, (("+", 4), ("-", 9), ("*", 2)))  # right: 7, 8, 6
    text, correct, verdict = noisy_solution(prob, np.random.default_rng(0), SlipModel(0.0, 0.25), 1.0, 1.0, style,
                                            {"minus_abs": 1.0})
    assert (text, correct, verdict) == (expected, False, "N")
    assert strip_marks(text) == misconception_solution(prob, ["minus_abs"])


def test_hard_split_is_longer_and_mostly_wrong_with_misconceptions_on():
    rng = np.random.default_rng(6)
    problems = {s: [sample_problem(rng, SPLITS[s]) for _ in range(1000)] for s in ("id", "long_chain", "hard")}
    steps = {s: np.mean([len(p.steps) for p in ps]) for s, ps in problems.items()}
    assert steps["hard"] > steps["long_chain"] > steps["id"]
    prone = np.mean([op in "+-" for p in problems["hard"] for op, _ in p.steps])
    assert prone > 0.85  # the operators whose misconceptions bite most make up 90% of the hard split's steps
    correct = {}
    for s in ("id", "hard"):
        correct[s] = np.mean([noisy_solution(p, rng, SlipModel(), misconception_rates=CONFIDENT)[1]
                              for p in problems[s]])
    assert correct["hard"] < 0.3 and correct["hard"] < correct["id"] - 0.05


def test_operator_weights_are_checked():
    with pytest.raises(ValueError, match="one weight >= 0 per operator"):
        SplitSpec(3, 5, "+-*", operator_weights=(0.5, 0.5))


#: sha256 of the corpora written by the code before the misconception options existed (commit 54804fb)
_OLD_CORPORA = {
    "make_corpus": "62bf6f5b8eab5024587ded702e55060cb9619f3acea2d35f120a7f73598f0672",
    "make_corpus_state": "7fa7372fb3a5e03b092413519ad0d2c6a247d8f46f13777fb9ca3e5aead63a00",
    "build_corpus": "cbf4b440023633452d92967881ed9c3f84f2178db76534a3d7b96df1785911d6",
}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()


#: the world of slips: params/01_rm_training/slips.yaml's world, the default before misconceptions were
SLIPS = dict(misconception_rates={},
             corpus_mixture={"id": 0.4, "short_chain": 0.1, "long_chain": 0.2, "new_operator": 0.15, "verbal": 0.15})


def test_world_of_slips_writes_the_same_corpus_as_before():
    world = WorldParams(corpus_size=3000, **SLIPS)
    assert _sha(make_corpus(world, 0)) == _OLD_CORPORA["make_corpus"]
    world = WorldParams(corpus_size=2000, correction_mark_style="state", **SLIPS)
    assert _sha(make_corpus(world, 3)) == _OLD_CORPORA["make_corpus_state"]
    mixture = [(SPLITS[n], 1.0) for n in ("id", "short_chain", "long_chain", "new_operator", "verbal")]
    corpus = build_corpus(np.random.default_rng(5), mixture, 2000, SlipModel(0.3, 0.4), 0.7, 0.6, "step")
    assert _sha(corpus) == _OLD_CORPORA["build_corpus"]


def test_world_of_slips_keeps_its_policy_cache_key():
    """Cached policies of worlds without misconceptions stay valid; a world with them gets its own policy."""
    key = policy_cache_key(WorldParams(**SLIPS), PolicyParams(), 0)
    assert set(key["world"]) == {"corpus_size", "corpus_mixture", "step_error_rate", "operand_slip_share",
                                 "correction_mark_rate", "correction_mark_style", "verdict_rate"}
    on = policy_cache_key(WorldParams(misconception_rates={"minus_abs": 0.5}), PolicyParams(), 0)
    assert on["world"]["misconception_rates"] == {"minus_abs": 0.5} and on != key
    assert "misconception_min_count" not in on["world"]  # left out at 1, so the default world keeps its key too
    three = policy_cache_key(WorldParams(misconception_min_count=3), PolicyParams(), 0)
    assert three["world"]["misconception_min_count"] == 3


@pytest.mark.parametrize("rates, message", [
    ("{bogus: 0.5}", "world.misconception_rates: unknown misconception 'bogus'; known: ['minus_abs', 'mod_quotient', "
                     "'plus_carry', 'times_tens']"),
    ("{minus_abs: 1.5}", "world.misconception_rates.minus_abs must be in [0, 1], got 1.5"),
])
def test_bad_misconception_rates_are_refused(tmp_path, rates, message):
    f = tmp_path / "bad.yaml"
    f.write_text(f"world:\n  misconception_rates: {rates}\n")
    with pytest.raises(ParamsError) as e:
        load_params("01_rm_training", f)
    assert str(e.value) == f"{f}: {message}"


def test_slips_params_are_a_short_diff_over_full():
    # slips.yaml is the default sizes (full.yaml) on the other world; toy.yaml the same world as full.yaml
    toy = to_dict(load_params("01_rm_training", ROOT / "params" / "01_rm_training" / "full.yaml"))
    slips = to_dict(load_params("01_rm_training", ROOT / "params" / "01_rm_training" / "slips.yaml"))
    changed = {k for k in toy if toy[k] != slips[k]}
    assert changed == {"params_name", "world", "evaluation"}
    assert {k for k in toy["world"] if toy["world"][k] != slips["world"][k]} == {"misconception_rates",
                                                                               "corpus_mixture"}
    assert toy["world"]["misconception_rates"] == CONFIDENT and "hard" in toy["world"]["corpus_mixture"]
    assert {k: slips["world"][k] for k in SLIPS} == SLIPS
    assert "hard" in toy["evaluation"]["splits"] and "hard" not in slips["evaluation"]["splits"]
    for nb in ("02_representation_analysis", "03_filtering", "04_steering"):
        later = load_params(nb, ROOT / "params" / nb / "slips.yaml")
        assert later.rm_params == "slips"


def test_misconception_min_count_limits_which_questions_trigger():
    """With a count of 3, only questions with three steps of an operator draw for its misconception; the
    corpus then holds it at its rate there and never elsewhere."""
    two_minus = Problem(8, (("-", 3), ("+", 1), ("-", 9)))
    three_minus = Problem(8, (("-", 3), ("-", 1), ("-", 9)))
    assert applicable(two_minus, {"minus_abs": 1.0}) == ["minus_abs"]
    assert applicable(two_minus, {"minus_abs": 1.0}, 3) == []
    assert applicable(three_minus, {"minus_abs": 1.0}, 3) == ["minus_abs"]
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        applicable(three_minus, {"minus_abs": 1.0}, 0)
    rng = np.random.default_rng(0)
    untouched = [noisy_solution(two_minus, rng, SlipModel(0.0), misconception_rates={"minus_abs": 1.0},
                                misconception_min_count=3)[0] for _ in range(20)]
    held = [noisy_solution(three_minus, rng, SlipModel(0.0), misconception_rates={"minus_abs": 1.0},
                           misconception_min_count=3)[0] for _ in range(20)]
    assert set(untouched) == {"8-3=5;5+1=6;6-9=7;A:7"}
    assert set(held) == {misconception_solution(three_minus, ["minus_abs"])}


@pytest.mark.parametrize("value", ["0", "1.5", "two"])
def test_bad_misconception_min_count_is_refused(tmp_path, value):
    f = tmp_path / "bad.yaml"
    f.write_text(f"world:\n  misconception_min_count: {value}\n")
    with pytest.raises(ParamsError, match="misconception_min_count"):
        load_params("01_rm_training", f)
