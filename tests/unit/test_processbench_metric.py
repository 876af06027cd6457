"""ProcessBench's metric (`evaluation.processbench_scores`), per-step scores to a prediction (`process.first_below`)
and the threshold chosen on validation solutions (`process.choose_threshold`), on hand-computed cases."""

import math

import numpy as np
import pytest

from gcrm_kit.evaluation import processbench_scores
from gcrm_kit.process import choose_threshold, first_below

NAN = float("nan")


def _same(got: dict, want: dict):
    assert set(got) == set(want)
    for k, v in want.items():
        assert (math.isnan(got[k]) and math.isnan(v)) or got[k] == pytest.approx(v), k


def test_processbench_scores_exact_first_wrong_step_and_harmonic_mean():
    # wrong solutions (labels 2, 0, 1): only the exact step counts (1 for 0 is too late, -1 misses the error): 1/3;
    # right solutions (label -1): predicted -1 twice of three: 2/3; F1 = 2 * 1/3 * 2/3 / (1/3 + 2/3) = 4/9
    got = processbench_scores([2, 1, -1, -1, 0, -1], [2, 0, 1, -1, -1, -1])
    _same(got, {"acc_erroneous": 1 / 3, "acc_correct": 2 / 3, "f1": 4 / 9, "n_erroneous": 3, "n_correct": 3})
    # too early a step is wrong as well; numpy integers are step indices too
    _same(processbench_scores(np.array([0, 2]), np.array([1, 2])),
          {"acc_erroneous": 0.5, "acc_correct": NAN, "f1": NAN, "n_erroneous": 2, "n_correct": 0})


def test_processbench_scores_without_one_kind_of_solution_is_nan_not_zero():
    _same(processbench_scores([-1, 0], [-1, -1]),
          {"acc_erroneous": NAN, "acc_correct": 0.5, "f1": NAN, "n_erroneous": 0, "n_correct": 2})
    _same(processbench_scores([1, 1], [1, 0]),
          {"acc_erroneous": 0.5, "acc_correct": NAN, "f1": NAN, "n_erroneous": 2, "n_correct": 0})
    _same(processbench_scores([], []),
          {"acc_erroneous": NAN, "acc_correct": NAN, "f1": NAN, "n_erroneous": 0, "n_correct": 0})
    # both accuracies 0: the harmonic mean is 0 (not 0/0)
    _same(processbench_scores([-1, 0], [0, -1]),
          {"acc_erroneous": 0.0, "acc_correct": 0.0, "f1": 0.0, "n_erroneous": 1, "n_correct": 1})


def test_processbench_scores_refuses_what_is_not_a_step_index():
    with pytest.raises(ValueError) as e:
        processbench_scores([0, 1], [0])
    assert str(e.value) == "2 predictions for 1 labels; give one prediction per solution"
    for bad, shown in ((True, "bool True"), (1.0, "float 1.0"), (-2, "int -2"), ("1", "str '1'")):
        with pytest.raises(ValueError) as e:
            processbench_scores([0, 0], [0, bad])
        assert str(e.value) == (f"labels[1] must be a step index (an integer >= 0) or -1 (no wrong step), got "
                                f"{shown}")
    with pytest.raises(ValueError, match=r"^predicted\[0\] must be a step index"):
        processbench_scores([None], [0])


def test_first_below_is_the_first_step_strictly_below_the_threshold():
    assert first_below([0.9, 0.4, 0.2], 0.5) == 1
    assert first_below([0.9, 0.4, 0.2], 0.4) == 2  # 0.4 is not below 0.4
    assert first_below([0.9, 0.4, 0.2], 0.1) == -1
    assert first_below(np.array([0.1]), 0.5) == 0
    with pytest.raises(ValueError, match="^step_scores has a NaN score at step 1; every step needs a score$"):
        first_below([0.9, NAN], 0.5)
    with pytest.raises(ValueError, match=r"^step_scores must be a non-empty list of per-step scores"):
        first_below([], 0.5)


# four wrong solutions (first wrong step 1) whose wrong step scores 0.2, 0.3, 0.6, 0.7, and one right solution
# whose first step scores 0.5. Candidates (midpoints) 0.25, 0.4, 0.55, 0.65, 0.8, 0.925:
#   0.4: two wrong steps found, the right solution passes: acc 0.5 and 1, F1 2/3 (overall accuracy 3/5);
#   0.8: every wrong step found but the right solution flagged at step 0: F1 0 (overall accuracy 4/5, the best);
#   0.55, 0.65: the right solution flagged: F1 0; 0.25: one wrong step found: F1 0.4; 0.925: step 0 always: F1 0.
SCORES = [[0.9, 0.2], [0.9, 0.3], [0.9, 0.6], [0.9, 0.7], [0.5, 0.95]]
LABELS = [1, 1, 1, 1, -1]


def test_choose_threshold_maximises_f1_not_accuracy():
    t, scores = choose_threshold(SCORES, LABELS)
    assert t == pytest.approx(0.4)
    _same(scores, {"acc_erroneous": 0.5, "acc_correct": 1.0, "f1": 2 / 3, "n_erroneous": 4, "n_correct": 1})
    assert [first_below(s, t) for s in SCORES] == [1, 1, -1, -1, -1]


def test_choose_threshold_ties_go_to_the_lowest_and_bad_validation_sets_are_refused():
    t, scores = choose_threshold(SCORES, LABELS, candidates=[0.45, 0.35, 0.8])  # 0.35 and 0.45 both give F1 2/3
    assert t == 0.35 and scores["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError) as e:
        choose_threshold(SCORES[:4], LABELS[:4])
    assert str(e.value) == "choosing a threshold needs erroneous and correct solutions; got 4 erroneous and 0 correct"
    with pytest.raises(ValueError) as e:
        choose_threshold([[0.9, 0.2], [0.5]], [2, -1])
    assert str(e.value) == "labels[0] = 2 is outside its 2 scored steps (0..1, or -1)"
    with pytest.raises(ValueError) as e:
        choose_threshold(SCORES, LABELS[:4])
    assert str(e.value) == "5 solutions' step scores for 4 labels; give one label per solution"
