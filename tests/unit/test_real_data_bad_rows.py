"""Bad rows read through every real-data adapter (`load_adapted` on a DatasetSpec, as notebook 01 reads its data):
each is an error naming the file, row and key, or is left out and counted by reason; none is coerced. Small files
are written here; no hub is touched."""

import gzip
import json
import logging

import pytest

from gcrm_kit.data import DataError
from gcrm_kit.params import DatasetSpec
from gcrm_kit.real_data import load_adapted

pytestmark = pytest.mark.scale

HH = "\n\nHuman: hi\n\nAssistant:"


def _write(path, rows=None, text=None):
    """Rows as JSON lines (or `text` as is) at `path`; returns the path as a string."""
    text = text if text is not None else "".join(json.dumps(r) + "\n" for r in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return str(path)


def _error(adapter, src, **kw) -> str:
    with pytest.raises(DataError) as e:
        load_adapted(DatasetSpec(adapter, src, **kw))
    return str(e.value)


LABEL_MISSING = "is missing or null; every row needs a correctness label (true or false)"
TEXT_MISSING = "is missing or null; every row needs it as a string"
NO_REFERENCE = "is missing or null; every problem needs a reference answer"


def _label_wrong(v):
    """The message for a label `v` that is not true/false or 1/0."""
    return (f"must be true or false (or 1 or 0), got {type(v).__name__} {v!r}"
            + (": labels are never read from text" if isinstance(v, str) else ""))


# ------------------------------------------------------------------------------------------------ records


def test_records_labels_are_booleans_or_one_and_zero_never_text(tmp_path):
    good = {"prompt": "p", "response": "r", "is_correct": True}
    src = _write(tmp_path / "r.jsonl", [good, {"prompt": "p", "response": "r"}])
    assert _error("records", src) == f"{src}, row 2 (line 2): key 'is_correct' {LABEL_MISSING}"
    src = _write(tmp_path / "r2.jsonl", [good, {**good, "is_correct": "incorrect"}])
    assert _error("records", src) == f"{src}, row 2 (line 2): key 'is_correct' {_label_wrong('incorrect')}"
    src = _write(tmp_path / "r3.jsonl", [{**good, "is_correct": "yes"}])  # a whole column of text
    assert _error("records", src) == f"{src}, row 1 (line 1): key 'is_correct' {_label_wrong('yes')}"
    src = _write(tmp_path / "r4.jsonl", [{**good, "is_correct": 1}, {**good, "is_correct": 2}])
    assert _error("records", src) == f"{src}, row 2 (line 2): key 'is_correct' {_label_wrong(2)}"
    # beside booleans, `datasets` would read the text "false" as false: the label is read from the file itself
    src = _write(tmp_path / "r5.jsonl", [good, {**good, "is_correct": "false"}])
    assert _error("records", src) == f"{src}, row 2 (line 2): key 'is_correct' {_label_wrong('false')}"
    # 1 and 0 are the labels true and false (CSV and Parquet files store them so), also beside booleans
    src = _write(tmp_path / "ok.jsonl", [{**good, "is_correct": 1}, {**good, "is_correct": 0}, good])
    assert [r.is_correct for r in load_adapted(DatasetSpec("records", src))] == [True, False, True]


def test_records_row_numbers_follow_blank_lines_and_other_formats(tmp_path):
    line = '{"prompt": "p", "response": "r", "is_correct": %s}\n'
    src = _write(tmp_path / "r.jsonl", text=line % "true" + "\n" + line % "null")
    assert _error("records", src) == f"{src}, row 2 (line 3): key 'is_correct' {LABEL_MISSING}"
    src = _write(tmp_path / "r.jsonl.gz", text=line % "true" + "\n\n" + line % "null")
    assert _error("records", src) == f"{src}, row 2 (line 4): key 'is_correct' {LABEL_MISSING}"
    src = _write(tmp_path / "r.csv", text="prompt,response,is_correct\np,r,True\np,r,yes\n")
    assert _error("records", src) == f"{src}, row 1: key 'is_correct' {_label_wrong('True')}"
    src = _write(tmp_path / "r.json", text=json.dumps([{"prompt": "p", "response": "r", "is_correct": False},
                                                       {"prompt": "p", "response": None, "is_correct": True}]))
    assert _error("records", src) == f"{src}, row 2: key 'response' {TEXT_MISSING}"
    folder = tmp_path / "snap"
    folder.mkdir()
    _write(folder / "test.jsonl", [{"prompt": "p", "response": "r", "is_correct": True}, {"prompt": "p"}])
    assert _error("records", str(folder), split="test") == (f"{folder} (split 'test'), row 2: key 'response' "
                                                            f"{TEXT_MISSING}")


def test_records_prompt_response_answer_and_meta_are_typed(tmp_path):
    good = {"prompt": "p", "response": "r", "is_correct": True}
    src = _write(tmp_path / "r.jsonl", [good, {**good, "prompt": None}])
    assert _error("records", src) == f"{src}, row 2 (line 2): key 'prompt' {TEXT_MISSING}"
    src = _write(tmp_path / "r2.jsonl", [{**good, "response": 7}])
    assert _error("records", src) == f"{src}, row 1 (line 1): key 'response' must be a string, got int 7"
    src = _write(tmp_path / "r3.jsonl", [{**good, "meta": "x"}])
    assert _error("records", src) == f"{src}, row 1 (line 1): key 'meta' must be an object (null: none), got str 'x'"
    src = _write(tmp_path / "r4.jsonl", [{**good, "answer": ["1"]}])
    assert _error("records", src) == (f"{src}, row 1 (line 1): key 'answer' must be a string or a number, got "
                                      "list ['1']")
    # numbers are answers written as strings; an empty response is kept (screening counts "empty response")
    src = _write(tmp_path / "ok.jsonl", [{**good, "answer": 3, "response": ""}, {**good, "answer": None}])
    recs = load_adapted(DatasetSpec("records", src))
    assert [(r.answer, r.response) for r in recs] == [("3", ""), (None, "r")] and recs.stats["skipped_rows"] == 0


def test_openmathinstruct_records_and_pairs_need_labels_and_count_empty_solutions(tmp_path):
    row = {"question": "q", "generated_solution": "s", "is_correct": True}
    for adapter in ("openmathinstruct_records", "openmathinstruct"):
        src = _write(tmp_path / f"{adapter}.jsonl", [row, {**row, "is_correct": "False"}])
        assert _error(adapter, src) == f"{src}, row 2 (line 2): key 'is_correct' {_label_wrong('False')}"
        src = _write(tmp_path / f"{adapter}2.jsonl", [row, {"question": "q", "generated_solution": "t"}])
        assert _error(adapter, src) == f"{src}, row 2 (line 2): key 'is_correct' {LABEL_MISSING}"
        src = _write(tmp_path / f"{adapter}3.jsonl", [{**row, "question": None}])
        assert _error(adapter, src) == f"{src}, row 1 (line 1): key 'question' {TEXT_MISSING}"
    # an empty solution makes no pair: left out of the pairing and counted
    src = _write(tmp_path / "omi.jsonl", [row, {**row, "generated_solution": "", "is_correct": False},
                                          {**row, "generated_solution": "t", "is_correct": False}])
    pairs = load_adapted(DatasetSpec("openmathinstruct", src))
    assert [(p.chosen, p.rejected) for p in pairs] == [("s", "t")]
    assert pairs.stats == {"questions": 1, "paired": 1, "skipped_rows": 1,
                           "skipped": {"empty 'generated_solution'": 1}}


def test_gsm8k_model_solutions_bad_samples(tmp_path, caplog):
    row = {"question": "q", "ground_truth": "x\nA: 1", "6b_finetuning": {"is_correct": True, "solution": "A: 1"}}
    src = _write(tmp_path / "g.jsonl", [row, {**row, "6b_finetuning": {"solution": "A: 2"}}])
    assert _error("gsm8k_model_solutions", src) == (f"{src}, row 2 (line 2): key '6b_finetuning.is_correct' "
                                                    f"{LABEL_MISSING}")
    src = _write(tmp_path / "g2.jsonl", [{**row, "6b_finetuning": {"is_correct": "yes", "solution": "A: 2"}}])
    assert _error("gsm8k_model_solutions", src) == (f"{src}, row 1 (line 1): key '6b_finetuning.is_correct' "
                                                    f"{_label_wrong('yes')}")
    src = _write(tmp_path / "g3.jsonl", [{**row, "6b_finetuning": {"is_correct": True, "solution": None}}])
    assert _error("gsm8k_model_solutions", src) == (f"{src}, row 1 (line 1): key '6b_finetuning.solution' "
                                                    f"{TEXT_MISSING}")
    src = _write(tmp_path / "g4.jsonl", [{**row, "ground_truth": None}])
    assert _error("gsm8k_model_solutions", src) == f"{src}, row 1 (line 1): key 'ground_truth' {TEXT_MISSING}"
    # a model without a sample for a question is left out and counted; an empty solution is kept for screening
    src = _write(tmp_path / "ok.jsonl", [{**row, "175b_finetuning": None},
                                         {**row, "175b_finetuning": {"is_correct": False, "solution": ""}},
                                         {**row, "175b_finetuning": None}])
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.real_data"):
        recs = load_adapted(DatasetSpec("gsm8k_model_solutions", src))
    assert [(r.meta["question_id"], r.meta["model"], r.response) for r in recs] == [
        (0, "6b_finetuning", "A: 1"), (1, "6b_finetuning", "A: 1"), (1, "175b_finetuning", ""),
        (2, "6b_finetuning", "A: 1")]
    assert recs.stats == {"skipped_rows": 2, "skipped": {"no '175b_finetuning' solution": 2}}
    assert (f"{src}: the gsm8k_model_solutions adapter left out 2, by reason: no '175b_finetuning' solution: 2 "
            "[row 1 (line 1), row 3 (line 3)]") in caplog.text
    src = _write(tmp_path / "none.jsonl", [{**row, "6b_finetuning": None}])
    assert _error("gsm8k_model_solutions", src) == (f"{src}: adapter 'gsm8k_model_solutions' found no records; left "
                                                    "out by reason: {\"no '6b_finetuning' solution\": 1}")


def test_helpsteer_ratings_are_integers_from_0_to_4(tmp_path):
    row = {"prompt": "p", "response": "r", "helpfulness": 3, "correctness": 3, "coherence": 4, "complexity": 1,
           "verbosity": 2}
    rating = "must be an integer rating from 0 to 4, got"
    for i, (bad, shown) in enumerate([("3", "str '3'"), (3.5, "float 3.5"), (5, "int 5"), (True, "bool True")]):
        src = _write(tmp_path / f"hs{i}.jsonl", [row, {**row, "correctness": bad}])
        assert _error("helpsteer", src) == f"{src}, row 2 (line 2): key 'correctness' {rating} {shown}"
    src = _write(tmp_path / "hs.jsonl", [row, {**row, "verbosity": None}])
    assert _error("helpsteer", src) == (f"{src}, row 2 (line 2): key 'verbosity' is missing or null; every row "
                                        "needs it as an integer rating from 0 to 4")
    src = _write(tmp_path / "hs_p.jsonl", [{**row, "response": None}])
    assert _error("helpsteer", src) == f"{src}, row 1 (line 1): key 'response' {TEXT_MISSING}"


# ------------------------------------------------------------------------------------------------ pairs


def test_pairs_sides_must_be_strings(tmp_path):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    src = _write(tmp_path / "p.jsonl", [good, {"prompt": "p", "chosen": "a"}])
    assert _error("pairs", src) == f"{src}, row 2 (line 2): key 'rejected' {TEXT_MISSING}"
    src = _write(tmp_path / "p2.jsonl", [{**good, "chosen": 3}])
    assert _error("pairs", src) == f"{src}, row 1 (line 1): key 'chosen' must be a string, got int 3"
    src = _write(tmp_path / "p3.jsonl", [{**good, "prompt": None}])
    assert _error("pairs", src) == f"{src}, row 1 (line 1): key 'prompt' {TEXT_MISSING}"
    # an empty side is kept: screening counts it as "empty response", as training would leave it out
    src = _write(tmp_path / "ok.jsonl", [good, {**good, "chosen": ""}])
    assert [p.chosen for p in load_adapted(DatasetSpec("pairs", src))] == ["a", ""]


def test_hh_rlhf_null_sides_are_errors_and_unsplittable_rows_are_counted_by_reason(tmp_path, caplog):
    ok = {"chosen": HH + " yes", "rejected": HH + " no"}
    src = _write(tmp_path / "hh.jsonl", [ok, {"chosen": HH + " yes", "rejected": None}])
    assert _error("hh_rlhf", src) == f"{src}, row 2 (line 2): key 'rejected' {TEXT_MISSING}"
    src = _write(tmp_path / "hh2.jsonl", [{**ok, "chosen": ["x"]}])
    assert _error("hh_rlhf", src) == f"{src}, row 1 (line 1): key 'chosen' must be a string, got list ['x']"
    rows = [ok, {"chosen": ok["chosen"], "rejected": ok["chosen"]}, {"chosen": "yes", "rejected": "no"},
            {"chosen": HH + " ", "rejected": HH + " no"}, {"chosen": ok["chosen"], "rejected": ok["chosen"]}]
    src = _write(tmp_path / "hh3.jsonl.gz", rows)
    with caplog.at_level(logging.WARNING, logger="gcrm_kit.real_data"):
        pairs = load_adapted(DatasetSpec("hh_rlhf", src), "pairs")
    assert len(pairs) == 1 and pairs.stats == {"skipped_rows": 4, "skipped": {
        "identical dialogues": 2, "no shared assistant turn": 1, "empty final response": 1}}
    assert "identical dialogues: 2 [row 2 (line 2), row 5 (line 5)]" in caplog.text
    src = _write(tmp_path / "hh4.jsonl", rows[1:3])
    assert _error("hh_rlhf", src) == (f"{src}: no HH-RLHF row could be split into prompt and responses "
                                      "(identical dialogues: 1 [row 1 (line 1)]; no shared assistant turn: 1 "
                                      "[row 2 (line 2)])")


# ------------------------------------------------------------------------------------------------ problems


@pytest.mark.parametrize("adapter, row, key, message", [
    ("gsm8k", {"question": "q", "answer": "no number here"}, "answer",
     "states no final answer ('#### x' or a number); every problem needs a reference answer"),
    ("gsm8k", {"question": None, "answer": "#### 1"}, "question", TEXT_MISSING),
    ("math", {"problem": "p", "solution": "it is one"}, "solution",
     "states no final answer (\\boxed{...}); every problem needs a reference answer"),
    ("gsm_hard", {"input": "q", "target": None}, "target", NO_REFERENCE),
    ("svamp", {"Body": None, "Question": "q", "Answer": 1}, "Body", TEXT_MISSING),
    ("svamp", {"Body": "b", "Question": "q", "Answer": True}, "Answer",
     "must be a string or a number, got bool True"),
    ("asdiv", {"body": "b", "question": "q", "answer": None}, "answer", NO_REFERENCE),
    ("qa", {"question": "q", "expected_answer": None}, "expected_answer", NO_REFERENCE),
    ("qa", {"question": "q", "expected_answer": [1]}, "expected_answer", "must be a string or a number, got list [1]"),
])
def test_problems_need_a_question_and_a_reference_answer(tmp_path, adapter, row, key, message):
    src = _write(tmp_path / "b.jsonl", [row])
    assert _error(adapter, src) == f"{src}, row 1 (line 1): key {key!r} {message}"


# ------------------------------------------------------------------------------------------------ unreadable JSON


def test_unreadable_json_names_the_file_and_line(tmp_path):
    good = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    src = _write(tmp_path / "bad.jsonl", text=good + '{"prompt": "p", "chosen": "a" "rejected": "b"}\n')
    assert _error("pairs", src) == f"{src}, line 2: not valid JSON (Expecting ',' delimiter, column 31)"
    src = _write(tmp_path / "bad.jsonl.gz", text=good + "\n" + "[1, 2]\n")
    assert _error("pairs", src) == f"{src}, line 3: expected a JSON object, got list"
    src = _write(tmp_path / "bad.json", text='[{"prompt": "p",\n "chosen": "a", "rejected": "b"]')
    assert _error("pairs", src).startswith(f"{src}, line 2: not valid JSON (")
    folder = tmp_path / "snap"
    folder.mkdir()
    _write(folder / "train.jsonl", text=good)
    _write(folder / "test.jsonl", text=good + good[:-3] + "\n")
    assert _error("pairs", str(folder), split="test").startswith(f"{folder}/test.jsonl, line 2: not valid JSON (")
    # `datasets` refuses a key whose kind changes between lines when blank lines sit between them
    rec = '{"prompt": "p", "response": "r", "is_correct": %s}\n'
    src = _write(tmp_path / "mixed.jsonl", text=rec % "true" + "\n" + rec % '"yes"')
    assert _error("records", src) == (f"{src}, line 3: key 'is_correct' is a string ('yes') where line 1 has a "
                                      "boolean; give each key one kind of value on every line")
