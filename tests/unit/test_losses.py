import math

import pytest
import torch
import torch.nn.functional as F

from gcrm_kit.data import Encoded, pad_batch
from gcrm_kit.losses import (ContrastiveDraw, bradley_terry_loss, contrastive_loss, draw_positions,
                             fractions_to_positions, response_span)


def test_bradley_terry_by_hand():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(1.0))) / 2
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_contrastive_by_hand_single_draw():
    # chosen states: t0 = e1, t1 = e2, t2 = (e1 + e2)/|.|; rejected: t0 = -e1, t1 = e2
    hc = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    hr = torch.tensor([[[-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    draw = ContrastiveDraw(pos_source=torch.tensor([[0]]), pos_goal=torch.tensor([[2]]),
                           neg_source=torch.tensor([[0]]), neg_goal=torch.tensor([[0]]))
    out = contrastive_loss(hc, hr, draw)
    pi_pos, pi_neg = _sig(1 / math.sqrt(2)), _sig(-1.0)
    assert out.pi_pos.item() == pytest.approx(pi_pos, rel=1e-6)
    assert out.pi_neg.item() == pytest.approx(pi_neg, rel=1e-6)
    assert out.loss.item() == pytest.approx(-math.log(pi_pos) - math.log(1 - pi_neg), rel=1e-6)


def test_contrastive_mean_over_all_source_goal_combinations():
    torch.manual_seed(0)
    hc, hr = torch.randn(1, 6, 4), torch.randn(1, 6, 4)
    draw = ContrastiveDraw(torch.tensor([[0, 1]]), torch.tensor([[3, 5]]), torch.tensor([[2, 4]]),
                           torch.tensor([[1, 2]]))
    out = contrastive_loss(hc, hr, draw, "cosine")
    cos = F.cosine_similarity(hc[0, [0, 1]][:, None], hc[0, [3, 5]][None], dim=-1)  # 2x2
    assert out.pi_pos.item() == pytest.approx(torch.sigmoid(cos).mean().item(), rel=1e-5)
    out_avg = contrastive_loss(hc, hr, draw, "cosine_avg")
    g = hc[0, [3, 5]].mean(0)
    cos_avg = F.cosine_similarity(hc[0, [0, 1]], g[None], dim=-1)
    assert out_avg.pi_pos.item() == pytest.approx(torch.sigmoid(cos_avg).mean().item(), rel=1e-5)


def test_contrastive_floor():
    # perfect alignment of positives, perfect opposition of negatives: the loss's minimum, about 0.627
    hc = torch.ones(1, 3, 2)
    hr = -torch.ones(1, 3, 2)
    draw = ContrastiveDraw(*(torch.zeros(1, 2, dtype=torch.long),) * 4)
    floor = -2 * math.log(_sig(1.0))
    assert contrastive_loss(hc, hr, draw).loss.item() == pytest.approx(floor, rel=1e-6)
    assert floor == pytest.approx(0.627, abs=1e-3)


def test_unknown_variant_is_an_error():
    draw = ContrastiveDraw(*(torch.zeros(1, 1, dtype=torch.long),) * 4)
    with pytest.raises(ValueError, match="variant"):
        contrastive_loss(torch.ones(1, 2, 2), torch.ones(1, 2, 2), draw, "dot")


def _batch(side):
    # prompts of different lengths, responses of different lengths; the response mask covers response + EOS
    seqs = [Encoded([1, 5, 6, 7, 8, 9, 2], 3), Encoded([1, 5, 8, 2], 2), Encoded([1, 5, 6, 7, 6, 5, 4, 3, 9, 2], 6)]
    return pad_batch(seqs, pad_id=0, side=side), seqs


@pytest.mark.parametrize("side", ["right", "left"])
def test_positions_only_in_responses_and_goals_follow_sources(side):
    b, seqs = _batch(side)
    mask = b["response_mask"]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = draw_positions(mask, mask.flip(0), 16, 16, generator=g)
        for idx, m in ((d.pos_source, mask), (d.pos_goal, mask), (d.neg_source, mask), (d.neg_goal, mask.flip(0))):
            assert bool(torch.gather(m, 1, idx).all()), "a position fell on prompt or padding"
        assert bool((d.pos_goal >= d.pos_source).all())


def test_eos_can_be_a_goal_and_ranges_are_fractions_from_the_start():
    b, seqs = _batch("right")
    mask = b["response_mask"]
    start, length = response_span(mask)
    assert start.tolist() == [3, 2, 6] and length.tolist() == [4, 2, 4]
    u = torch.tensor([[0.0, 0.49, 0.5, 0.999, 1.0]]).expand(3, -1)
    pos = fractions_to_positions(u, start, length)
    assert pos[0].tolist() == [3, 4, 5, 6, 6]  # u = 1 is the EOS (index 6 of sequence 0)
    g = torch.Generator().manual_seed(1)
    d = draw_positions(mask, mask, 64, 64, source_range=(0.0, 0.5), goal_range=(0.5, 1.0), generator=g)
    off_src = (d.pos_source - start[:, None]).float() / length[:, None]
    off_goal = (d.pos_goal - start[:, None]).float() / length[:, None]
    assert bool((off_src < 0.5).all()) and bool((off_goal >= 0.5).all())
    # late goals only: the released code's flag would read the other way; ours is a plain fraction
    d = draw_positions(mask, mask, 64, 64, goal_range=(0.9, 1.0), generator=g)
    assert bool((d.pos_goal == start[:, None] + length[:, None] - 1).all())


def test_response_without_tokens_is_an_error():
    with pytest.raises(ValueError, match="no response tokens"):
        response_span(torch.zeros(1, 4, dtype=torch.long))


def test_response_mask_with_a_gap_is_an_error():
    ok = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    start, length = response_span(ok)
    assert start.tolist() == [1, 0, 3, 0] and length.tolist() == [2, 2, 1, 4]
    gappy = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 1]])
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] is not one contiguous span"):
        response_span(gappy)
    with pytest.raises(ValueError, match="not one contiguous span"):
        response_span(torch.tensor([[1, 0, 0, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="not one contiguous span"):  # and so draw_positions never lands on a 0
        draw_positions(gappy, ok[:2], 4, 4)
