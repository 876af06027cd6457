import numpy as np
import pytest

from gcrm_kit.toyworld import SPLITS, Problem, SlipModel, noisy_solution, parse_prompt, sample_problem, strip_marks, verify
from gcrm_kit.toyworld.corpus import CORRECTION_MARK, VERDICT_NO, VERDICT_YES


def test_values_and_solution_by_hand():
    prob = Problem(7, (("+", 3), ("*", 2), ("-", 5)))
    assert prob.prompt == "7+3*2-5?"
    assert prob.values() == [7, 0, 0, 5]
    assert prob.solution() == "7+3=0;0*2=0;0-5=5;A:5"
    assert Problem(7, (("+", 3), ("%", 4)), "verbal").prompt == "7 plus 3 mod 4?"
    assert Problem(7, (("-", 9),)).answer == 8  # modulo 10, never negative


def test_verify_correct_solution():
    prob = Problem(7, (("+", 3), ("*", 2), ("-", 5)))
    v = verify(prob, prob.solution())
    assert v.is_correct and v.well_formed and v.first_error_step is None and v.answer == 5


def test_verify_locates_first_wrong_result():
    prob = Problem(7, (("+", 3), ("*", 2), ("-", 5)))
    text = "7+3=0;0*2=1;1-5=6;A:6"
    v = verify(prob, text)
    assert not v.is_correct and v.first_error_step == 1
    assert text[v.first_error_char:].startswith("0*2=1")


def test_verify_operand_slip_and_carried_value():
    prob = Problem(2, (("*", 3), ("+", 4)))
    # operand copied wrong (4 instead of 3) but computed right from it: still the first error
    v = verify(prob, "2*4=8;8+4=2;A:2")
    assert v.first_error_step == 0 and not v.is_correct


def test_verify_error_that_cancels_is_correct_but_located():
    prob = Problem(3, (("+", 1), ("*", 5)))  # 4, 0
    v = verify(prob, "3+1=6;6*5=0;A:0")  # wrong step, right answer by luck
    assert v.is_correct and v.first_error_step == 0


def test_verify_missing_steps_and_garbage():
    prob = Problem(1, (("+", 1), ("+", 1), ("+", 1)))
    v = verify(prob, "1+1=2;A:2")
    assert v.first_error_step == 1 and not v.is_correct
    v = verify(prob, "nonsense")
    assert not v.well_formed and not v.is_correct and v.answer is None


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_parse_prompt_round_trip(split):
    rng = np.random.default_rng(0)
    for _ in range(50):
        prob = sample_problem(rng, SPLITS[split])
        assert parse_prompt(prob.prompt) == prob


def test_splits_respect_their_specs():
    rng = np.random.default_rng(1)
    for name, spec in SPLITS.items():
        for _ in range(100):
            prob = sample_problem(rng, spec)
            assert spec.min_steps <= len(prob.steps) <= spec.max_steps
            assert all(op in spec.operators for op, _ in prob.steps)
            if spec.required_operator:
                assert any(op == spec.required_operator for op, _ in prob.steps)
            assert prob.wording == spec.wording


def test_noisy_solution_labels_agree_with_verifier():
    rng = np.random.default_rng(2)
    slips = SlipModel(step_error_rate=0.3)
    n_wrong = 0
    for _ in range(300):
        prob = sample_problem(rng, SPLITS["id"])
        text, correct, verdict = noisy_solution(prob, rng, slips, correction_mark_rate=1.0, verdict_rate=1.0)
        v = verify(prob, strip_marks(text))
        assert v.is_correct == correct
        assert verdict == (VERDICT_YES if correct else VERDICT_NO)
        # with every erroneous solution marked, a mark appears exactly when some step is wrong
        assert (CORRECTION_MARK in text) == (v.first_error_step is not None)
        n_wrong += not correct
    assert 0.3 < n_wrong / 300 < 0.95


def test_corpus_error_rate_matches_slip_model():
    rng = np.random.default_rng(3)
    prob = Problem(5, tuple(("+", 1) for _ in range(5)))
    wrong_steps = 0
    for _ in range(2000):
        text, _, _ = noisy_solution(prob, rng, SlipModel(0.12), correction_mark_rate=1.0)
        wrong_steps += text.count(CORRECTION_MARK)
    assert abs(wrong_steps / (2000 * 5) - 0.12) < 0.02
