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


def test_state_marks_follow_the_running_value():
    from gcrm_kit.toyworld.problems import OPERATORS, STEP_SEP

    rng = np.random.default_rng(4)
    n_marked_after_first = 0
    for _ in range(300):
        prob = sample_problem(rng, SPLITS["long_chain"])
        text, correct, _ = noisy_solution(prob, rng, SlipModel(0.3), correction_mark_rate=1.0, mark_style="state")
        steps = text.split(STEP_SEP)[:-1]
        true_value = prob.start
        marks = []
        for (op, d), step in zip(prob.steps, steps):
            true_value = OPERATORS[op][1](true_value, d)
            result = int(step.rstrip(CORRECTION_MARK).split("=")[1])
            marks.append(step.endswith(CORRECTION_MARK))
            assert marks[-1] == (result != true_value), text
        # the last step is marked exactly when the answer is wrong: the verdict is the last step's mark
        assert marks[-1] == (not correct)
        n_marked_after_first += sum(marks) > 1
    assert n_marked_after_first > 30  # errors do carry on into later steps' marks
    with pytest.raises(ValueError, match="mark_style"):
        noisy_solution(prob, rng, SlipModel(0.3), mark_style="carry")


def test_corpus_error_rate_matches_slip_model():
    rng = np.random.default_rng(3)
    prob = Problem(5, tuple(("+", 1) for _ in range(5)))
    wrong_steps = 0
    for _ in range(2000):
        text, _, _ = noisy_solution(prob, rng, SlipModel(0.12), correction_mark_rate=1.0)
        wrong_steps += text.count(CORRECTION_MARK)
    assert abs(wrong_steps / (2000 * 5) - 0.12) < 0.02


def test_verdict_weighted_loss_counts_the_token_after_eos_weight_times():
    import types

    import torch

    from gcrm_kit.toyworld.policy import VerdictWeightedLoss

    eos = 2
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)
    # row 0: prompt (-100), response 3 4, EOS, verdict 1; row 1: response 4, EOS, verdict 0, then padding
    labels = torch.tensor([[-100, 3, 4, eos, 1, -100], [-100, -100, 4, eos, 0, -100]])
    out = types.SimpleNamespace(logits=logits)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1),
                                           ignore_index=-100, reduction="none").view(2, 5)
    counted = labels[:, 1:] != -100
    plain = ce[counted].mean()
    assert torch.allclose(VerdictWeightedLoss(eos, 1.0)(out, labels), plain)
    # the verdicts are the targets at (0, 3) and (1, 3): each counts 4 times, the denominator stays the 7 target tokens
    assert int(counted.sum()) == 7
    expected = (ce[counted].sum() + 3 * (ce[0, 3] + ce[1, 3])) / counted.sum()
    assert torch.allclose(VerdictWeightedLoss(eos, 4.0)(out, labels), expected)
    assert torch.allclose(VerdictWeightedLoss(eos, 4.0)(out, labels, num_items_in_batch=12), expected * 7 / 12)


def test_choose_policy_sets_aside_policies_whose_verdict_fails(tmp_path, monkeypatch, caplog):
    import json
    from dataclasses import replace

    from gcrm_kit.params import PolicyParams, WorldParams
    from gcrm_kit.toyworld import policy as pol

    scores = {0: 0.59, 1: 0.93, 2: 0.62, 7: 0.55, 8: 0.70, 9: 0.61}
    trained = []

    def fake_get_policy(world, policy, seed, cache_root):
        trained.append(seed)
        d = tmp_path / f"policy{seed}"
        d.mkdir(exist_ok=True)
        (d / "verdict_check.json").write_text(json.dumps({"seed": seed, "verdict_auroc": scores[seed]}))
        return d

    monkeypatch.setattr(pol, "get_policy", fake_get_policy)
    w, p = WorldParams(), PolicyParams(min_verdict_auroc=0.8, max_attempts=3)
    choice = pol.choose_policy(w, p, 0, tmp_path)
    assert (choice.seed, choice.policy_dir.name, trained) == (1, "policy1", [0, 1])
    assert [(a["seed"], a["accepted"], a["used"]) for a in choice.attempts] == [(0, False, False), (1, True, True)]
    trained.clear()
    with caplog.at_level("WARNING"):
        choice = pol.choose_policy(w, p, 7, tmp_path)
    assert (choice.seed, trained) == (8, [7, 8, 9]) and "no policy of seeds [7, 8, 9]" in caplog.text
    assert [a["used"] for a in choice.attempts] == [False, True, False]
    trained.clear()
    choice = pol.choose_policy(w, replace(p, min_verdict_auroc=0.0), 0, tmp_path)
    assert (choice.seed, trained, choice.attempts[0]["verdict_auroc"]) == (0, [0], None)
    # which policy is accepted is not part of how it is trained: the cache key ignores the acceptance fields
    other = replace(p, min_verdict_auroc=0.5, max_attempts=1)
    assert pol.policy_cache_key(w, p, 0) == pol.policy_cache_key(w, other, 0)
    assert pol.policy_cache_key(w, p, 0) != pol.policy_cache_key(w, replace(p, verdict_loss_weight=2.0), 0)


def test_verdict_check_scores_fresh_solutions_with_the_policys_verdict(tiny_policy_dir):
    from gcrm_kit.params import WorldParams
    from gcrm_kit.toyworld.policy import verdict_check

    a = verdict_check(tiny_policy_dir, WorldParams(), seed=0, n=200)
    assert 0.0 <= a <= 1.0 and a == verdict_check(tiny_policy_dir, WorldParams(), seed=0, n=200)
    assert a != verdict_check(tiny_policy_dir, WorldParams(), seed=1, n=200)  # another seed, other solutions
    with pytest.raises(ValueError, match="step_error_rate"):
        verdict_check(tiny_policy_dir, WorldParams(step_error_rate=0.0, misconception_rates={}), seed=0, n=50)
