import math

import pytest
import torch

from gcrm_kit.losses import grm_regulariser, response_logps


def test_response_logps_by_hand():
    # vocabulary of 3; logits chosen so log-probs are easy: uniform everywhere except position 1
    logits = torch.zeros(1, 4, 3)
    logits[0, 1] = torch.tensor([0.0, math.log(2.0), 0.0])  # p(token 1) = 2/4 at position 1
    ids = torch.tensor([[0, 2, 1, 0]])
    mask = torch.tensor([[0, 0, 1, 1]])  # response = tokens 2 and 3 (predicted by logits at 1 and 2)
    lp, n = response_logps(logits, ids, mask)
    assert n.item() == 2
    assert lp.item() == pytest.approx(math.log(0.5) + math.log(1 / 3), rel=1e-6)


def test_regularisers_by_hand():
    lc, lr, n = torch.tensor([-2.0]), torch.tensor([-5.0]), torch.tensor([4.0])
    rc, rr = torch.tensor([-3.0]), torch.tensor([-4.0])
    assert grm_regulariser("sft", lc, lr, n).item() == pytest.approx(0.5)
    s = 0.1 * ((-2.0 + 3.0) - (-5.0 + 4.0))
    assert grm_regulariser("dpo", lc, lr, n, rc, rr, beta=0.1).item() == pytest.approx(math.log(1 + math.exp(-s)))
    s = 0.1 * (-2.0 + 5.0)
    assert grm_regulariser("dpo_noref", lc, lr, n, beta=0.1).item() == pytest.approx(math.log(1 + math.exp(-s)))
    with pytest.raises(ValueError, match="reference"):
        grm_regulariser("dpo", lc, lr, n)
    with pytest.raises(ValueError, match="unknown GRM"):
        grm_regulariser("kl", lc, lr, n)
