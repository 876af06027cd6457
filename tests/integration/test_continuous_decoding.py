"""The continuous-batching loop of the sequential methods (`decode_drawn`) on a tiny random policy: the samples it
draws are those of the cached loop token for token, whatever joins or leaves the batch; a question's next samples
start only after its previous ones have finished; a sample with a token limit stops there."""

import numpy as np
import pytest
import torch

from gcrm_kit.filtering.cached_decoding import PolicyStepper
from gcrm_kit.data import pad_ids
from gcrm_kit.filtering import decode_pruned
from gcrm_kit.filtering.continuous_decoding import DrawSchedule, decode_drawn, join, trim

pytestmark = pytest.mark.slow

PROMPTS = ["1+2*3?", "4-5+6*7-1?", "9*9?", "3 plus 4 times 2?"] * 6
GEN = dict(max_new_tokens=40, temperature=1.5, seed=3, suppress_tokens=["<s>", "<pad>", "<unk>"])


@pytest.fixture(scope="module")
def reference(models):
    policy, tokenizer, _, _ = models
    return decode_pruned(policy, tokenizer, PROMPTS, list(range(len(PROMPTS))), batch_size=64, **GEN)


def test_schedule_releases_a_question_s_next_samples_when_its_last_one_finishes():
    s = DrawSchedule([np.array([4, 0, 2]), np.array([1, 3])], counts=[3, 1], step=2)
    assert s.start() == [4, 0, 1] and s.total == 4
    assert s.finished(1) == []  # question 1 drew its one sample
    assert s.finished(4) == []  # sample 0 of question 0 still runs
    assert s.finished(0) == [2]  # the window is done: the rest (one, at its count)
    assert s.finished(2) == []
    d = DrawSchedule([np.arange(5)], counts=[5], step=1, first=3)
    assert d.start() == [0, 1, 2] and d.finished(0) == [] and d.finished(2) == [] and d.finished(1) == [3]
    # two in flight after the first two: both start when the first ones end, then one whenever one ends
    f = DrawSchedule([np.arange(6)], counts=[6], step=1, first=2, in_flight=2)
    assert f.start() == [0, 1] and f.finished(1) == [] and f.finished(0) == [2, 3]
    assert f.finished(3) == [4] and f.finished(4) == [5] and f.finished(2) == [] and f.finished(5) == []
    assert f.fresh().in_flight == 2 and f.fresh().start() == [0, 1]


def test_drawn_samples_equal_the_cached_loop_s(models, reference):
    policy, tokenizer, _, _ = models
    n = len(PROMPTS)
    assert 0 < sum(reference.finished) < n  # some end early: rows leave mid-way and others join
    orders = [np.arange(q, n, 4) for q in range(4)]  # 4 questions of 6 samples each
    sched = DrawSchedule(orders, counts=[6, 2, 4, 1], step=2)
    gen = decode_drawn(policy, tokenizer, PROMPTS, list(range(n)), sched, batch_size=5, admit_min=2, **GEN)
    drawn = [int(i) for o, c in zip(orders, [6, 2, 4, 1]) for i in o[:c]]
    assert sorted(gen.response_ids) == sorted(drawn)
    for i in drawn:
        assert gen.response_ids[i] == reference.response_ids[i]
    assert gen.policy_tokens == sum(len(reference.response_ids[i]) for i in drawn)
    assert gen.prefills > 3  # samples joined a running batch several times
    # the cache never grew past what the longest live row needs: its prompt plus the token budget
    longest_prompt = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS) + 1
    assert gen.largest_cache <= longest_prompt + GEN["max_new_tokens"]


def test_everything_at_once_and_token_limits(models, reference):
    policy, tokenizer, _, _ = models
    n = len(PROMPTS)
    sched = DrawSchedule([np.arange(n)], counts=[n], step=n, limits={0: 3, 5: 1})
    gen = decode_drawn(policy, tokenizer, PROMPTS, list(range(n)), sched, batch_size=9, **GEN)
    assert gen.response_ids[0] == reference.response_ids[0][:3] and gen.response_ids[5] == reference.response_ids[5][:1]
    assert all(gen.response_ids[i] == reference.response_ids[i] for i in range(n) if i not in (0, 5))


def test_join_and_trim_keep_each_row_s_next_token_logits(models):
    policy, tokenizer, _, _ = models
    enc = [[1] + tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS[:3]]
    a, b = PolicyStepper(policy), PolicyStepper(policy)
    la = a.start(*pad_ids(enc[:1], 0, side="left"))
    for _ in range(4):  # row 0 runs ahead by four tokens
        la = a.step(la.argmax(-1))
    lb = b.start(*pad_ids(enc[1:], 0, side="left"))
    join(a, b)
    trim(a)  # every column is still attended to by some row: nothing is cut
    nxt = torch.cat([la, lb]).argmax(-1)
    got = a.step(nxt)
    # row by row, the same as each row decoded alone
    for j, (e, lg) in enumerate(zip([enc[0], enc[1], enc[2]], [la, lb[:1], lb[1:]])):
        alone = PolicyStepper(policy)
        out = alone.start(*pad_ids([e], 0, side="left"))
        if j == 0:
            for _ in range(4):
                out = alone.step(out.argmax(-1))
        out = alone.step(out.argmax(-1))
        torch.testing.assert_close(got[j:j + 1], out, atol=1e-4, rtol=1e-4)
