"""The ideal-policy bound facts (toyworld.ideal): the corpus process's own token probabilities, checked by hand on
one solution and against the facts they imply for worlds whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcrm_kit.params import WorldParams
from gcrm_kit.toyworld import Problem
from gcrm_kit.toyworld.ideal import ideal_bounds, ideal_token_logprobs


def test_token_logprobs_by_hand():
    """8-3=5;5+1=6: no misconception about '+', minus_abs held with prior 0.7 and revealed at the first step."""
    world = WorldParams(step_error_rate=0.1, operand_slip_share=0.5, misconception_rates={"minus_abs": 0.7})
    prob = Problem(8, (("-", 3), ("+", 1)))
    lp, conf = ideal_token_logprobs(prob, "8-3=5;5+1=6;A:6", world)
    assert len(lp) == len(conf) == 12 + 3 + 1
    # 8-3: both rules give 5, so the result is the believed digit with 1 - 0.05 and nothing is revealed
    assert lp[2] == pytest.approx(math.log(0.95)) and lp[4] == pytest.approx(math.log(0.95))
    assert sum(lp) == pytest.approx(4 * math.log(0.95))
    # a wrong operand and a result off both rules: operand slip 0.05 / 8 others; result slip 0.05 / 9
    lp, _ = ideal_token_logprobs(prob, "8-4=2;2+1=3;A:3", world)
    assert lp[2] == pytest.approx(math.log(0.05 / 8)) and lp[4] == pytest.approx(math.log(0.05 / 9))
    # 3-7: right 6, held 4. Writing 4 has probability 0.7 * 0.95 + 0.3 * 0.05 / 9
    prob = Problem(3, (("-", 7), ("-", 8)))
    lp, _ = ideal_token_logprobs(prob, "3-7=4;4-8=4;A:4", world)
    assert lp[4] == pytest.approx(math.log(0.7 * 0.95 + 0.3 * 0.05 / 9))
    # ... and reveals the rule: 4-8 is then |4-8| = 4 with 0.95
    assert lp[10] == pytest.approx(math.log(0.95))
    with pytest.raises(ValueError, match="has 1 steps"):
        ideal_token_logprobs(prob, "3-7=4;A:4", world)


def test_bounds_of_worlds_with_known_answers():
    no_errors = WorldParams(step_error_rate=0.0, misconception_rates={})
    b = ideal_bounds(no_errors, "id", n=200)
    assert b.share_correct == 1.0 and b.first_error_oracle_saving == 0.0
    assert all(np.isnan(v) for v in b.confidence_auroc.values())  # one class: no AUROC
    # slips only: the lowest log-probability tells right from wrong almost perfectly
    slips = ideal_bounds(WorldParams(misconception_rates={}), "id", n=600)
    assert slips.confidence_auroc["min_logprob"] > 0.9
    # a misconception applied with certainty is invisible to the group confidence: the distribution at every
    # position is the same whichever way the solution goes
    certain = WorldParams(step_error_rate=0.0, misconception_rates={"minus_abs": 1.0})
    c = ideal_bounds(certain, "id", n=400)
    assert 0.0 < c.share_correct < 1.0
    assert c.confidence_auroc["lowest_group_confidence"] == pytest.approx(0.5)
    assert c.confidence_auroc["min_logprob"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown split"):
        ideal_bounds(certain, "nope")
