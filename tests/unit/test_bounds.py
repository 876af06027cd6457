"""The bounds facts on hand-made records, each against a value computed by hand (the toy tokenizer has one token
per character, so token counts are character counts), and the confidence scores on hand-made log-probabilities."""

import json

import numpy as np
import pytest

from gcrm_kit.bounds import majority_answer, world_bounds
from gcrm_kit.confidence import (TokenLogprobs, confidence_scores, group_confidences, record_logprobs,
                                 tail_confidence, token_confidence)
from gcrm_kit.data import GenerationRecord


def rec(split, qid, response, correct, answer, fe="absent", finished=True):
    meta = {"split": split, "question_id": qid}
    if fe != "absent":
        meta["first_error_char"] = fe
    if not finished:
        meta["finished"] = False
    return GenerationRecord("1+2*3?", response, correct, answer, meta)


# generated tokens = characters + 1 EOS (record 7 is unfinished: no EOS); total 152
RECORDS = [
    rec("id", 0, "1+2=3; 3*2=6;A:6", True, "6", None),       # 17
    rec("id", 0, "1+2=4;4*2=8;A:8", False, "8", 0),          # 16, error step ends at ';' index 5
    rec("id", 0, "1+2=3;3*2=5;A:5", False, "5", 6),          # 16, error step ends at ';' index 11
    rec("id", 0, "1+2=3;3*2=6;A:6", True, "6", None),        # 16, the shortest '6'
    rec("id", 1, "4-1=3; A:3", True, "3", None),             # 11
    rec("id", 1, "4-1=2;A:2", False, "2", 0),                # 10, a 1-1 tie with '3': '2' wins
    rec("long", 0, "5+5=0;0+1=1;A:1", True, "1", None),      # 16, same question_id as record 0, other split
    rec("long", 0, "5+5=0;0+1=2;A:", False, None, 6, finished=False),  # 14, no answer: no vote
    rec("long", 0, "5+5=0;0+1=1;A:7", False, "7", None),     # 16, wrong but no located error
    rec("long", 1, "7*3=1;A:1", False, "1", 6),              # 10, error in the answer: no ';' after it
    rec("id", 2, "6+0=6;A:6", True, "6", 0),                 # 10, correct despite a marked step: runs on
]


@pytest.fixture(scope="module")
def bounds(tokenizer):
    return world_bounds(RECORDS, tokenizer)


def test_share_correct_overall_and_per_split(bounds):
    assert bounds.n_samples == 11 and bounds.tokens_generated == 152
    assert bounds.share_correct == pytest.approx(5 / 11)
    assert bounds.share_correct_by_split == pytest.approx({"id": 4 / 7, "long": 1 / 4})


def test_first_error_relative_positions(bounds):
    # wrong located: 0/15, 6/15, 0/9, 6/14, 6/9 (token index over response tokens, EOS left out)
    fe = bounds.first_error
    assert (fe.n_located, fe.n_unlocated) == (5, 1)
    assert fe.mean == pytest.approx((0 + 6 / 15 + 0 + 6 / 14 + 6 / 9) / 5)
    assert fe.quantiles == pytest.approx({"q10": 0.0, "q25": 0.0, "q50": 0.4, "q75": 3 / 7, "q90": 4 / 7})
    assert fe.histogram == [2, 0, 0, 0, 2, 0, 1, 0, 0, 0]
    assert fe.bin_edges == pytest.approx(np.linspace(0, 1, 11))


def test_first_error_oracle_stops_after_the_wrong_step(bounds, tokenizer):
    # kept: record 1 6 of 16, record 2 12 of 16, record 5 6 of 10, record 7 12 of 14; record 9 (no ';' after its
    # error), record 8 (unlocated) and every correct record run to the end
    assert bounds.first_error_oracle_saving == pytest.approx((10 + 4 + 4 + 2) / 152)
    # without step marks the sample stops at the token holding first_error_char: kept 1, 7, 1, 7, 7
    at_char = world_bounds(RECORDS, tokenizer, step_sep=None)
    assert at_char.first_error_oracle_saving == pytest.approx((15 + 9 + 9 + 7 + 3) / 152)


def test_vote_oracle_keeps_the_shortest_majority_sample(bounds):
    # ("id", 0): '6' wins, record 3 (16) kept, three stopped at 1 token: saved 65 - 19 = 46
    # ("id", 1): tie '3'/'2', the lexicographically first '2' wins: record 5 (10) kept, record 4 1: saved 10
    # ("long", 0): tie '1'/'7' -> '1': record 6 (16) kept, records 7 and 8 1 each: saved 46 - 18 = 28
    # ("long", 1), ("id", 2): one sample each, kept whole
    assert bounds.n_questions == 5
    assert bounds.vote_oracle_saving == pytest.approx((46 + 10 + 28) / 152)
    assert bounds.vote_accuracy == pytest.approx(3 / 5)  # right: ("id", 0), ("long", 0), ("id", 2)


def test_vote_oracle_without_answers(tokenizer):
    records = [rec("id", 0, "1+2=", False, None),   # alone: kept whole, 5 tokens
               rec("id", 1, "3+4=", False, None),   # no answer in the question: both stopped at 1 of 5 tokens
               rec("id", 1, "3+4=7", False, None)]  # 1 of 6
    b = world_bounds(records, tokenizer)
    assert b.vote_oracle_saving == pytest.approx((4 + 5) / 16)
    assert b.vote_accuracy == 0.0


def test_majority_answer_rules():
    assert majority_answer(["b", "a", "b", None, None, None]) == "b"
    assert majority_answer(["b", "a", "c", "a", "b"]) == "a"
    assert majority_answer([None, ""]) is None


def test_records_without_first_errors_or_logprobs_leave_those_facts_out(tokenizer):
    plain = [GenerationRecord(r.prompt, r.response, r.is_correct, r.answer,
                              {"question_id": r.meta["question_id"], "split": r.meta["split"]}) for r in RECORDS]
    b = world_bounds(plain, tokenizer)
    assert b.first_error is None and b.first_error_oracle_saving is None and b.confidence_auroc is None
    assert b.vote_oracle_saving == pytest.approx((46 + 10 + 29) / 153)  # record 7 now finished: 15 tokens


def test_as_dict_is_json_and_table_has_a_row_per_fact(bounds):
    d = bounds.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["first_error"]["histogram"] == [2, 0, 0, 0, 2, 0, 1, 0, 0, 0]
    table = bounds.bounds_table().set_index("fact")
    assert table.loc["share correct", "value"] == pytest.approx(5 / 11)
    assert table.loc["share correct (long)", "value"] == pytest.approx(1 / 4)
    assert table.loc["first error position: q90", "value"] == pytest.approx(4 / 7)
    assert table.loc["vote oracle: saved share of tokens", "value"] == pytest.approx(84 / 152)
    assert table.loc["first-error oracle: saved share of tokens", "value"] == pytest.approx(20 / 152)


def test_bad_meta_is_an_error_naming_the_record(tokenizer):
    mixed = RECORDS[:2] + [GenerationRecord("1?", "1=1;A:1", True, "1", {"question_id": 9, "split": "id"})]
    with pytest.raises(ValueError, match="record 2: meta has no 'first_error_char'"):
        world_bounds(mixed, tokenizer)
    outside = [rec("id", 0, "1=1;A:1", False, "1", 7)]
    with pytest.raises(ValueError, match="record 0: meta 'first_error_char' must be null or a character offset"):
        world_bounds(outside, tokenizer)
    with pytest.raises(ValueError, match="record 0: meta has no 'question_id'"):
        world_bounds([GenerationRecord("1?", "A:1", True, "1")], tokenizer)


# ---------------------------------------------------------------------------------------------- confidence

TOP = np.array([[-0.1, -3.0], [-0.5, -1.0], [-0.2, -2.0], [-1.0, -1.2], [-0.05, -4.0]])


def test_deepconf_token_group_and_tail_confidence():
    conf = token_confidence(TOP)
    assert conf == pytest.approx([1.55, 0.75, 1.1, 1.1, 2.025])  # high where the top token takes the mass
    assert group_confidences(conf, 2) == pytest.approx([1.15, 0.925, 1.1, 1.5625])
    assert group_confidences(conf, 3) == pytest.approx([3.4 / 3, 2.95 / 3, 4.225 / 3])
    assert group_confidences(conf, 10) == pytest.approx([1.305])  # shorter than the window: one group
    assert group_confidences(conf, 6) == pytest.approx([1.305])
    assert group_confidences(conf, 5) == pytest.approx([1.305])
    assert tail_confidence(conf, 2) == pytest.approx(1.5625)
    assert tail_confidence(conf, 10) == pytest.approx(1.305)
    s = confidence_scores([TokenLogprobs(np.array([-0.1, -1.0, -0.2, -1.2, -0.05]), TOP)], window=3, tail=2)
    assert {k: float(v[0]) for k, v in s.items()} == pytest.approx(
        {"mean_logprob": -0.51, "min_logprob": -1.2, "lowest_group_confidence": 2.95 / 3, "tail_confidence": 1.5625})


def lp_record(qid, correct, sampled, confs, extra=None):
    """A record carrying engine-written log-probabilities: per token a dict token -> log-probability whose top-2
    mean is -c (so C = c)."""
    top = [{"a": 0.0, "b": -2.0 * c} for c in confs]
    if extra:
        top[-1].update(extra)
    return GenerationRecord("2+2?", "2+2=4;A:4", correct, "4" if correct else "5",
                            {"question_id": qid, "token_logprobs": sampled, "top_logprobs": top})


def test_confidence_aurocs_from_record_logprobs(tokenizer):
    records = [
        lp_record(0, True, [-0.1, -0.1, -3.0], [2, 2, 2]),     # mean -1.07, min -3.0, groups 2 2, tail 2
        lp_record(1, True, [-0.1, -0.1, -2.5], [1, 3, 3]),     # mean -0.90, min -2.5, groups 2 3, tail 3
        lp_record(2, False, [-1.5, -1.5, -1.5], [3, 3, 1]),    # mean -1.50, min -1.5, groups 3 2, tail 1
        lp_record(3, False, [-1.2, -1.2, -2.7], [1.8, 1.8, 5], extra={"c": -30.0}),  # min -2.7, groups 1.8 3.4, tail 5
    ]
    b = world_bounds(records, tokenizer, record_logprobs(records, k=2), window=2, tail=1)
    # pairs (correct, wrong) ranked right, ties half: mean 4/4; min 1/4; lowest group 0.5+1+0.5+1; tail 1+0+1+0
    assert b.confidence_auroc == pytest.approx({"mean_logprob": 1.0, "min_logprob": 0.25,
                                                "lowest_group_confidence": 0.75, "tail_confidence": 0.5})


def test_record_logprobs_reads_engine_shapes_and_names_bad_records():
    shapes = [{"x": -2.0, "y": -0.5, "z": -9.0}, [-0.1, -3.0, -0.2], [{"logprob": -1.0}, {"logprob": -0.3}]]
    r = GenerationRecord("1?", "1", True, "1", {"token_logprobs": [-0.5, -0.1, -1.0], "top_logprobs": shapes})
    (lp,) = record_logprobs([r], k=2)
    assert lp.sampled == pytest.approx([-0.5, -0.1, -1.0])
    assert lp.top == pytest.approx(np.array([[-0.5, -2.0], [-0.1, -0.2], [-0.3, -1.0]]))  # the k highest, sorted
    ok = GenerationRecord("1?", "1", True, "1", {"token_logprobs": [-0.1], "top_logprobs": [[-0.1, -2.0]]})

    def bad(**meta):
        return [ok, GenerationRecord("1?", "1", True, "1", meta)]

    with pytest.raises(ValueError, match="record 1: meta has no 'token_logprobs'"):
        record_logprobs(bad(top_logprobs=[[-0.1, -1.0]]), k=2)
    with pytest.raises(ValueError, match="record 1: meta has no 'top_logprobs'"):
        record_logprobs(bad(token_logprobs=[-0.1]), k=2)
    with pytest.raises(ValueError, match="record 1: meta 'token_logprobs' has 2 tokens but 'top_logprobs' has 1"):
        record_logprobs(bad(token_logprobs=[-0.1, -0.2], top_logprobs=[[-0.1, -1.0]]), k=2)
    with pytest.raises(ValueError, match=r"record 1: meta 'top_logprobs'\[0\]: 1 candidates, fewer than k=2"):
        record_logprobs(bad(token_logprobs=[-0.1], top_logprobs=[[-0.1]]), k=2)
    with pytest.raises(ValueError, match=r"record 1: meta 'token_logprobs'\[0\]: 0.9 is above 0"):
        record_logprobs(bad(token_logprobs=[0.9], top_logprobs=[[-0.1, -1.0]]), k=2)
