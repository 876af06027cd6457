"""Preference pairs of notebook 01 (`rm_training.build_pairs`, `split_heldout`): one (correct, incorrect) pair per
question that has both, questions with only one kind left out and counted, and a held-out split that is disjoint
by question and fixed by the seed."""

from gcrm_kit.data import GenerationRecord
from gcrm_kit.rm_training import build_pairs, split_heldout


def _records(n_mixed=20):
    """`n_mixed` questions with 2 correct and 2 incorrect samples, then one all-correct, one all-incorrect, and one
    excluded question (both kinds)."""
    recs = []
    for q in range(n_mixed):
        for k in range(4):
            recs.append(GenerationRecord(f"q{q}?", f"q{q} s{k}", is_correct=k % 2 == 0, meta={"split": "id"}))
    recs += [GenerationRecord("good?", f"g{k}", True) for k in range(3)]
    recs += [GenerationRecord("bad?", f"b{k}", False) for k in range(3)]
    recs += [GenerationRecord("held?", "right", True), GenerationRecord("held?", "wrong", False)]
    return recs


def test_one_correct_and_one_incorrect_per_question():
    recs = _records()
    pairs, stats = build_pairs(recs, seed=0, exclude_prompts={"held?"})
    by_q = {}
    for r in recs:
        by_q.setdefault(r.prompt, {})[r.response] = r.is_correct
    assert len(pairs) == 20 and len({p.prompt for p in pairs}) == 20  # one pair per mixed question
    for p in pairs:
        assert by_q[p.prompt][p.chosen] is True and by_q[p.prompt][p.rejected] is False
        assert p.meta == {"split": "id"}
    assert stats == {"questions": 23, "all_correct": 1, "all_incorrect": 1, "excluded": 1, "paired": 20}
    assert not {"good?", "bad?", "held?"} & {p.prompt for p in pairs}


def test_pairs_depend_on_the_seed_only():
    recs = _records()
    a, _ = build_pairs(recs, seed=3)
    b, _ = build_pairs(list(recs), seed=3)
    key = lambda ps: [(p.prompt, p.chosen, p.rejected) for p in ps]  # noqa: E731
    assert key(a) == key(b)
    picks = {tuple(key(build_pairs(recs, seed=s)[0])) for s in range(6)}
    assert len(picks) > 1  # the choice among several correct / incorrect samples is random


def test_questions_with_one_kind_only_make_no_pair():
    only_good = [GenerationRecord("q?", f"s{k}", True) for k in range(4)]
    only_bad = [GenerationRecord("r?", f"s{k}", False) for k in range(4)]
    pairs, stats = build_pairs(only_good + only_bad, seed=0)
    assert pairs == [] and stats["all_correct"] == 1 and stats["all_incorrect"] == 1 and stats["paired"] == 0
    # a duplicate response counts once: a question whose only samples are one repeated wrong answer has no pair
    pairs, stats = build_pairs([GenerationRecord("d?", "x", False)] * 3, seed=0)
    assert pairs == [] and stats["all_incorrect"] == 1


def test_heldout_split_is_disjoint_by_question_and_deterministic():
    pairs, _ = build_pairs(_records(40), seed=0, exclude_prompts={"held?"})
    train, held = split_heldout(pairs, 0.25, seed=7)
    assert len(held) == 10 and len(train) == 30
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert sorted(p.prompt for p in train + held) == sorted(p.prompt for p in pairs)
    again = split_heldout(pairs, 0.25, seed=7)
    assert [p.prompt for p in again[0]] == [p.prompt for p in train]
    assert [p.prompt for p in again[1]] == [p.prompt for p in held]
    other = split_heldout(pairs, 0.25, seed=8)
    assert {p.prompt for p in other[1]} != {p.prompt for p in held}


def test_heldout_split_keeps_at_least_one_pair():
    pairs, _ = build_pairs(_records(3), seed=0, exclude_prompts={"held?"})
    train, held = split_heldout(pairs, 0.01, seed=0)
    assert len(held) == 1 and len(train) == 2
