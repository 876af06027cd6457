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


def test_subsets_train_for_as_many_steps_as_all_pairs_under_same_steps():
    from gcrm_kit.params import RMTrainingParams, from_dict
    from gcrm_kit.rm_training import subset_params

    p = from_dict(RMTrainingParams, {"train_pair_counts": [100], "training": {"epochs": 2.0, "batch_size": 32}})
    sub = subset_params(p, 100, 2893)
    assert sub.training.epochs == 2.0 * 2893 / 100 and sub.training.batch_size == 32
    assert math.isclose(sub.training.epochs * 100 / 32, p.training.epochs * 2893 / 32)  # same number of steps
    assert subset_params(p, 2893, 2893) is p
    same_epochs = from_dict(RMTrainingParams, {"subset_schedule": "same_epochs"})
    assert subset_params(same_epochs, 100, 2893) is same_epochs
