"""Real-dataset adapters into the kit's schema, on fixtures written here and, when present, on the real slices in
../shared/data (GSM8K test, GSM8K model solutions with correctness, HH-RLHF harmless test). No hub is touched."""

import copy
import gzip
import json
import os
from pathlib import Path

import pytest

from gcrm_kit.data import DataError, GenerationRecord, PreferencePair
from gcrm_kit.params import DatasetSpec
from gcrm_kit.real_data import (answers_match, apply_chat_template, extract_answer, extract_boxed, helpsteer_sets,
                                load_adapted, pair_records, split_shared_prefix)


pytestmark = pytest.mark.scale

ROOT = Path(__file__).resolve().parents[2]
# the real slices sit beside the checkout; GCRM_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("GCRM_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return str(path)


def test_openmathinstruct_pairs_one_correct_one_incorrect_per_question(tmp_path):
    rows = [{"question": "q1", "generated_solution": f"s{i}", "is_correct": i % 2 == 0, "expected_answer": "1"}
            for i in range(4)] + [{"question": "q2", "generated_solution": "only right", "is_correct": True,
                                   "expected_answer": "2"}]
    pairs = load_adapted(DatasetSpec("openmathinstruct", _jsonl(tmp_path / "omi.jsonl", rows)), "pairs")
    assert len(pairs) == 1 and pairs[0].prompt == "q1"
    assert pairs[0].chosen in {"s0", "s2"} and pairs[0].rejected in {"s1", "s3"}
    # a record's answer is the solution's own, the reference sits in meta (a vote over references would be moot)
    recs = load_adapted(DatasetSpec("openmathinstruct_records", _jsonl(tmp_path / "omi2.jsonl", [
        {"question": "q", "generated_solution": "s", "is_correct": False, "predicted_answer": "3",
         "expected_answer": "1"}])), "records")
    assert recs[0].answer == "3" and recs[0].meta["reference"] == "1"
    more, stats = pair_records([GenerationRecord("q", f"s{i}", i < 3) for i in range(6)], max_pairs_per_question=3)
    assert len(more) == 3 and len({p.chosen for p in more}) == 3 and stats["paired"] == 1


def test_hh_rlhf_prompt_is_the_shared_prefix(tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to bake?\n\nAssistant: Mix flour and water."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to bake?\n\nAssistant: No."
    prompt, c, r = split_shared_prefix(chosen, rejected)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to bake?\n\nAssistant:"
    assert (c, r) == (" Mix flour and water.", " No.")
    # responses that share their first words: the prompt still ends at the assistant turn, never mid-response
    prompt, c, r = split_shared_prefix("\n\nHuman: x\n\nAssistant: Sure, yes", "\n\nHuman: x\n\nAssistant: Sure, no")
    assert prompt.endswith("Assistant:") and c == " Sure, yes" and r == " Sure, no"
    assert split_shared_prefix(chosen, chosen) is None
    src = _jsonl(tmp_path / "hh.jsonl.gz", [{"chosen": chosen, "rejected": rejected},
                                            {"chosen": chosen, "rejected": chosen}], gz=True)
    pairs = load_adapted(DatasetSpec("hh_rlhf", src), "pairs")
    # the skip count rides on the returned list, never in a pair (it would travel into a split's file)
    assert len(pairs) == 1 and "skipped_rows" not in pairs[0].meta
    assert pairs.stats == {"skipped_rows": 1, "skipped": {"identical dialogues": 1}}
    assert pairs[0].meta["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                         {"role": "user", "content": "how to bake?"}]


def test_answers_extracted_and_checked():
    assert extract_answer("so 2+2=<<2+2=4>>4\n#### 4") == "4"
    assert extract_answer("blah\nA: 1,250") == "1,250"
    assert extract_boxed("thus \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert extract_answer("the answer is $\\boxed{x^{2}}$") == "x^{2}"
    assert extract_answer("I think 3 then 7") == "7"
    assert answers_match("1,250", "1250") and answers_match("\\frac{1}{2}", "0.5") and answers_match("$18.00", 18)
    assert not answers_match("17", "18") and not answers_match(None, "1")
    assert answers_match("x^{2}", "x^{2}") and answers_match("5 \\text{ apples}", "5")


def test_benchmark_problem_adapters(tmp_path):
    src = _jsonl(tmp_path / "svamp.jsonl", [{"Body": "Tom has 3 apples.", "Question": "He eats 1. How many?",
                                             "Answer": 2.0}])
    (q,) = load_adapted(DatasetSpec("svamp", src), "problems")
    assert q.prompt == "Tom has 3 apples. He eats 1. How many?" and answers_match("2", q.answer)
    src = _jsonl(tmp_path / "math.jsonl", [{"problem": "1/2+0?", "solution": "It is $\\boxed{\\frac12}$."}])
    (q,) = load_adapted(DatasetSpec("math", src), "problems")
    assert q.answer == "\\frac12"
    src = _jsonl(tmp_path / "qa.jsonl", [{"question": "2*3?", "expected_answer": "6"}])
    assert load_adapted(DatasetSpec("qa", src), "problems")[0].answer == "6"


def test_helpsteer_attribute_sets(tmp_path):
    rows = [{"prompt": "p", "response": f"r{i}", "helpfulness": i, "correctness": i, "coherence": 4,
             "complexity": 4 - i, "verbosity": 2} for i in range(5)]
    recs = load_adapted(DatasetSpec("helpsteer", _jsonl(tmp_path / "hs.jsonl", rows)), "records")
    sets = helpsteer_sets(recs, "helpfulness")
    assert [r.response for r in sets["high"]] == ["r4"] and [r.response for r in sets["low"]] == ["r0", "r1"]
    with pytest.raises(ValueError, match="unknown HelpSteer attribute 'humour'"):
        helpsteer_sets(recs, "humour")


def test_adapter_counts_survive_the_chat_template(tokenizer, tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: yes"
    src = _jsonl(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": chosen + "!"},
                                         {"chosen": chosen, "rejected": chosen}])
    pairs = load_adapted(DatasetSpec("hh_rlhf", src), "pairs")
    t = copy.deepcopy(tokenizer)
    t.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    for out in (apply_chat_template(pairs, t), apply_chat_template(pairs, tokenizer)):
        assert out.stats == {"skipped_rows": 1, "skipped": {"identical dialogues": 1}}
        assert all("skipped_rows" not in p.meta for p in out)
    rows = [{"question": "q", "generated_solution": f"s{i}", "is_correct": i == 0} for i in range(2)]
    omi = load_adapted(DatasetSpec("openmathinstruct", _jsonl(tmp_path / "omi.jsonl", rows)), "pairs")
    assert omi.stats == {"questions": 1, "paired": 1, "skipped_rows": 0, "skipped": {}}
    recs = load_adapted(DatasetSpec("records", _jsonl(tmp_path / "r.jsonl", [
        {"prompt": "p", "response": "r", "is_correct": True}])))
    assert recs.stats == {"skipped_rows": 0, "skipped": {}} and isinstance(recs, list)


def test_local_folder_gives_the_split_asked_for(tmp_path):
    snap = tmp_path / "snapshot"
    snap.mkdir()
    row = lambda i: {"prompt": f"p{i}", "chosen": "a", "rejected": "b"}  # noqa: E731
    _jsonl(snap / "train.jsonl", [row(0), row(1), row(2)])
    _jsonl(snap / "test.jsonl", [row(9)])
    train = load_adapted(DatasetSpec("pairs", str(snap), split="train"), "pairs")
    test = load_adapted(DatasetSpec("pairs", str(snap), split="test"), "pairs")
    assert [p.prompt for p in train] == ["p0", "p1", "p2"] and [p.prompt for p in test] == ["p9"]
    assert len(load_adapted(DatasetSpec("pairs", str(snap), split="train", limit=2))) == 2
    with pytest.raises(DataError, match=r"snapshot: the folder .*snapshot has no split 'validation'.*'train', 'test'"):
        load_adapted(DatasetSpec("pairs", str(snap), split="validation"), "pairs")
    # a folder whose file names say no split is the one split 'train'
    plain = tmp_path / "plain"
    plain.mkdir()
    _jsonl(plain / "data.jsonl", [row(0)])
    assert len(load_adapted(DatasetSpec("pairs", str(plain)), "pairs")) == 1
    with pytest.raises(DataError, match=r"has no split 'test'"):
        load_adapted(DatasetSpec("pairs", str(plain), split="test"), "pairs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        load_adapted(DatasetSpec("pairs", str(tmp_path / "empty")), "pairs")


def test_wrong_dataset_id_and_missing_column_name_them(tmp_path):
    with pytest.raises(DataError, match="dataset 'no-such-org/no-such-dataset'"):
        load_adapted(DatasetSpec("hh_rlhf", "no-such-org/no-such-dataset"))
    with pytest.raises(DataError, match="no such file"):
        load_adapted(DatasetSpec("hh_rlhf", str(tmp_path / "absent.jsonl")))
    src = _jsonl(tmp_path / "bad.jsonl", [{"chosen": "a"}])
    with pytest.raises(DataError, match=r"bad\.jsonl: missing column\(s\) \['rejected'\] for adapter 'hh_rlhf'"):
        load_adapted(DatasetSpec("hh_rlhf", src))
    with pytest.raises(DataError, match="unknown adapter 'hh'"):
        load_adapted(DatasetSpec("hh", src))
    with pytest.raises(DataError, match="gives records, but pairs are needed"):
        load_adapted(DatasetSpec("records", src), "pairs")


def test_chat_template_renders_prompts_when_the_tokenizer_has_one(tokenizer):
    pair = PreferencePair("\n\nHuman: hi\n\nAssistant:", " a", " b",
                          {"messages": [{"role": "user", "content": "hi"}]})
    assert apply_chat_template([pair], tokenizer) == [pair]  # the toy tokenizer has no template
    t = copy.deepcopy(tokenizer)  # a copy with a template, as instruct models ship
    t.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                       "{% if add_generation_prompt %}<assistant>{% endif %}")
    (out,) = apply_chat_template([pair], t)
    assert out.prompt == "<user>hi<assistant>" and out.chosen == "a" and out.meta["raw_prompt"] == pair.prompt
    assert apply_chat_template([pair], t, "never") == [pair]


# ----------------------------------------------------------------------------- the real slices in ../shared/data

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")


@needs_shared
def test_shared_gsm8k_test_loads_as_problems():
    f = SHARED_DATA / "gsm8k" / "test.jsonl"
    if not f.is_file():
        pytest.skip(f"{f} absent")
    probs = load_adapted(DatasetSpec("gsm8k", str(f)), "problems")
    assert len(probs) == 1319 and all(p.prompt and p.answer for p in probs)
    # the reference solution's own final answer checks against the extracted reference
    assert all(answers_match(extract_answer(p.response), p.answer) for p in probs)


@needs_shared
def test_shared_gsm8k_model_solutions_load_as_records_and_pairs():
    f = SHARED_DATA / "gsm8k" / "model_solutions.jsonl"
    if not f.is_file():
        pytest.skip(f"{f} absent")
    recs = load_adapted(DatasetSpec("gsm8k_model_solutions", str(f)), "records")
    assert len(recs) == 5276 and sum(r.is_correct for r in recs) == 2001
    # the answer checker agrees with the dataset's own correctness labels on nearly every solution
    agree = sum(answers_match(extract_answer(r.response), r.answer) == r.is_correct for r in recs) / len(recs)
    assert agree > 0.97, agree
    pairs, stats = pair_records(recs)
    assert pairs and all(isinstance(p, PreferencePair) and p.chosen != p.rejected for p in pairs)
    assert stats["paired"] == len(pairs)


@needs_shared
def test_shared_hh_rlhf_harmless_test_loads_as_pairs():
    f = SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    if not f.is_file():
        pytest.skip(f"{f} absent")
    pairs = load_adapted(DatasetSpec("hh_rlhf", str(f)), "pairs")
    assert len(pairs) + pairs.stats["skipped_rows"] == 2312 and len(pairs) > 2200
    for p in pairs:
        assert p.prompt.startswith("\n\nHuman:") and p.prompt.endswith("\n\nAssistant:")
        assert p.chosen.strip() and p.rejected.strip() and p.chosen != p.rejected
        assert p.meta["messages"][-1]["role"] == "user"
