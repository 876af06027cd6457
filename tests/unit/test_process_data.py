"""Step-labelled solutions: the `processbench` and `trl_stepwise` adapters (read through `load_adapted`, as a
notebook reads its data), their writers (round trips), every bad row as an error naming the file, row (line) and
key, and toy-world solutions mapped to ProcessBench labels. Small files are written here; no hub is touched."""

import json

import pytest

from gcrm_kit.data import DataError, GenerationRecord
from gcrm_kit.params import DatasetSpec
from gcrm_kit.process import toy_first_error_step, toy_processbench_records, toy_steps
from gcrm_kit.real_data import ADAPTERS, STEP_JOIN, load_adapted, write_processbench, write_trl_stepwise
from gcrm_kit.toyworld.problems import Problem, verify

PB = [{"id": "gsm8k-0", "generator": "m", "problem": "1+1?", "steps": ["1+1 is 3.", "So 3."], "label": 0,
       "final_answer_correct": False},
      {"id": "gsm8k-1", "generator": "m", "problem": "2+2?", "steps": ["2+2 is 4.", "Then\nso 4."], "label": -1,
       "final_answer_correct": True}]
TRL = [{"prompt": "1+1?", "completions": ["1+1 is 2.", "So 3."], "labels": [True, False]},
       {"prompt": "2+2?", "completions": ["2+2 is 4."], "labels": [True]}]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _read(adapter, src):
    return load_adapted(DatasetSpec(adapter, src), "records")


def _error(adapter, src) -> str:
    with pytest.raises(DataError) as e:
        load_adapted(DatasetSpec(adapter, src))
    return str(e.value)


def _lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.scale
def test_both_adapters_are_registered_as_records():
    assert ADAPTERS["processbench"].kind == "records" and ADAPTERS["trl_stepwise"].kind == "records"


@pytest.mark.scale
def test_processbench_rows_become_records_and_round_trip(tmp_path):
    src = _write(tmp_path / "pb.jsonl", PB)
    recs = _read("processbench", src)
    assert [(r.prompt, r.response, r.is_correct, r.answer) for r in recs] == [
        ("1+1?", "1+1 is 3." + STEP_JOIN + "So 3.", False, None), ("2+2?", "2+2 is 4.\n\nThen\nso 4.", True, None)]
    assert recs[1].meta == {"steps": ["2+2 is 4.", "Then\nso 4."], "label": -1, "id": "gsm8k-1", "source": src,
                            "generator": "m", "final_answer_correct": True}
    out = write_processbench(recs, [1, -1], tmp_path / "out" / "pred.jsonl", step_scores=[[0.9, 0.1], [0.8, 0.7]])
    assert _lines(out) == [{**PB[0], "prediction": 1, "match": False, "step_scores": [0.9, 0.1]},
                           {**PB[1], "prediction": -1, "match": True, "step_scores": [0.8, 0.7]}]
    again = _read("processbench", str(out))
    assert [(r.prompt, r.response, r.is_correct, {**r.meta, "source": src}) for r in again] == \
        [(r.prompt, r.response, r.is_correct, r.meta) for r in recs]


@pytest.mark.scale
def test_trl_stepwise_rows_become_records_and_round_trip(tmp_path):
    src = _write(tmp_path / "trl.jsonl", TRL)
    recs = _read("trl_stepwise", src)
    assert [(r.prompt, r.response, r.is_correct) for r in recs] == [("1+1?", "1+1 is 2.\n\nSo 3.", False),
                                                                   ("2+2?", "2+2 is 4.", True)]
    assert recs[0].meta == {"steps": ["1+1 is 2.", "So 3."], "step_labels": [True, False], "label": 1, "source": src}
    out = write_trl_stepwise(recs, tmp_path / "trl_out.jsonl")
    assert _lines(out) == TRL
    assert [r.meta["step_labels"] for r in _read("trl_stepwise", str(out))] == [[True, False], [True]]


@pytest.mark.scale
def test_processbench_labels_written_as_trl_steps(tmp_path):
    recs = [GenerationRecord("q", "", False, None, {"steps": ["a", "b", "c"], "label": 1}),
            GenerationRecord("r", "", True, None, {"steps": ["d"], "label": -1})]
    assert [x["labels"] for x in _lines(write_trl_stepwise(recs, tmp_path / "a.jsonl"))] == [[True, False, False],
                                                                                            [True]]
    dropped = _lines(write_trl_stepwise(recs, tmp_path / "b.jsonl", after_error="drop"))
    assert dropped[0] == {"prompt": "q", "completions": ["a", "b"], "labels": [True, False]}
    with pytest.raises(ValueError) as e:
        write_trl_stepwise([GenerationRecord("q", "", False, None, {"steps": ["a"]})], tmp_path / "c.jsonl")
    assert str(e.value) == "record 0: meta has neither 'step_labels' nor 'label' (the first wrong step, -1: none)"
    assert not (tmp_path / "c.jsonl").exists()


LABEL_RANGE = "it must be -1 (every step is right) or a step index from 0 to 1"
NOT_INT = "must be an integer, the index of the first wrong step (-1: every step is right), got"


@pytest.mark.scale
@pytest.mark.parametrize("change, key, problem", [
    ({"label": 2}, "label", f"is 2, outside the solution's 2 steps; {LABEL_RANGE}"),
    ({"label": -2}, "label", f"is -2, outside the solution's 2 steps; {LABEL_RANGE}"),
    ({"label": "1"}, "label", f"{NOT_INT} str '1'"),
    ({"label": 0.5}, "label", f"{NOT_INT} float 0.5"),
    ({"label": True}, "label", f"{NOT_INT} bool True"),
    ({"label": None}, "label", "is missing or null; every row needs the index of its first wrong step (-1: every "
                               "step is right)"),
    ({"steps": ["a", ""]}, "steps[1]", "is an empty step (''); every step needs text"),
    ({"steps": ["a", " \n"]}, "steps[1]", "is an empty step (' \\n'); every step needs text"),
    ({"steps": ["a", None]}, "steps[1]", "is null; every step needs text"),
    ({"steps": []}, "steps", "is an empty list; every solution needs at least one step"),
    ({"steps": "a"}, "steps", "must be a list of strings (the solution's steps), got str 'a'"),
])
def test_processbench_bad_rows_name_file_row_and_key(tmp_path, change, key, problem):
    src = _write(tmp_path / "pb.jsonl", [PB[1], {**PB[0], **change}])
    assert _error("processbench", src) == f"{src}, row 2 (line 2): key {key!r} {problem}"


@pytest.mark.scale
@pytest.mark.parametrize("change, key, problem", [
    ({"labels": [True]}, "labels", "has 1 labels for the 2 steps in 'completions'; give one true/false label per "
                                   "step"),
    ({"labels": [True, False, True]}, "labels", "has 3 labels for the 2 steps in 'completions'; give one "
                                                "true/false label per step"),
    ({"labels": [True, 0]}, "labels[1]", "must be true or false, got int 0: step labels are JSON booleans, never "
                                         "numbers or text"),
    ({"labels": [True, "false"]}, "labels[1]", "must be true or false, got str 'false': step labels are JSON "
                                               "booleans, never numbers or text"),
    ({"labels": [True, None]}, "labels[1]", "must be true or false, got NoneType None: step labels are JSON "
                                            "booleans, never numbers or text"),
    ({"labels": None}, "labels", "is missing or null; every row needs one true/false label per step"),
    ({"completions": ["", "b"]}, "completions[0]", "is an empty step (''); every step needs text"),
    ({"completions": ["a", 3]}, "completions[1]", "must be a string, got int 3"),
])
def test_trl_stepwise_bad_rows_name_file_row_and_key(tmp_path, change, key, problem):
    src = _write(tmp_path / "trl.jsonl", [TRL[1], {**TRL[0], **change}])
    assert _error("trl_stepwise", src) == f"{src}, row 2 (line 2): key {key!r} {problem}"


@pytest.mark.scale
def test_processbench_writer_refuses_what_would_not_read_back(tmp_path):
    recs = _read("processbench", _write(tmp_path / "pb.jsonl", PB))
    cases = [((recs, [0]), "1 predictions for 2 records; give one per record"),
             ((recs, [0, 2]), "record 1: prediction must be -1 (every step is right) or a step index from 0 to 1, "
                              "got 2"),
             ((recs, [0, True]), "record 1: prediction must be -1 (every step is right) or a step index from 0 to "
                                 "1, got True"),
             (([GenerationRecord("q", "", True, None, {"steps": ["a", ""], "label": -1})], [-1]),
              "record 0: meta 'steps' must be a non-empty list of steps with text, got ['a', '']"),
             (([GenerationRecord("q", "", True, None, {"steps": ["a"]})], [-1]),
              "record 0: meta has no 'label' (the first wrong step, -1: none)")]
    for args, message in cases:
        with pytest.raises(ValueError) as e:
            write_processbench(*args, tmp_path / "w.jsonl")
        assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        write_processbench(recs, [0, -1], tmp_path / "w.jsonl", step_scores=[[0.5, float("nan")], [1, 1]])
    assert str(e.value) == "record 0: step scores must be 2 finite numbers, one per step, got [0.5, nan]"
    assert not (tmp_path / "w.jsonl").exists()


# ------------------------------------------------------------------------------------------------ toy world

PROBLEM = Problem(7, (("+", 3), ("*", 2), ("-", 5)))  # running values 7, 0, 0, 5


@pytest.mark.parametrize("solution, char, label", [
    ("7+3=0;0*2=0;0-5=5;A:5", None, -1),        # right throughout
    ("7+3=0;0*2=1;1-5=6;A:6", 6, 1),            # the second step is wrong: it starts at character 6
    ("7+3=1;1*2=2;2-5=7;A:7", 0, 0),            # the first step
    ("7+3=0;0*2=0;A:0", 12, 2),                 # a step missing: the answer, at character 12, came too early
    ("7+3=0;0*2=0;0-5=5;A:4", None, 3),         # every step right, the answer (the last step) wrong
])
def test_toy_first_error_char_maps_to_the_step_index(solution, char, label):
    v = verify(PROBLEM, solution)
    assert v.first_error_char == char
    assert toy_first_error_step(solution, v.first_error_char, v.is_correct) == label
    assert toy_first_error_step(solution, 7, False) == 1  # an offset inside a step names that step


def test_toy_records_get_processbench_meta_and_write_as_processbench(tmp_path):
    wrong = "7+3=0;0*2=1;1-5=6;A:6"
    recs = [GenerationRecord(PROBLEM.prompt, wrong, False, "6", {"first_error_char": 6, "split": "id"}),
            GenerationRecord(PROBLEM.prompt, PROBLEM.solution(), True, "5", {"first_error_char": None, "id": "q7"})]
    out = toy_processbench_records(recs)
    assert toy_steps(wrong) == ["7+3=0", "0*2=1", "1-5=6", "A:6"]
    assert out[0].meta == {"first_error_char": 6, "split": "id", "steps": toy_steps(wrong), "label": 1, "id": "toy-0"}
    assert (out[1].meta["label"], out[1].meta["id"]) == (-1, "q7") and "steps" not in recs[0].meta
    lines = _lines(write_processbench(out, [1, 2], tmp_path / "toy.jsonl"))
    assert [(x["id"], x["label"], x["prediction"], x["match"]) for x in lines] == [("toy-0", 1, 1, True),
                                                                                   ("q7", -1, 2, False)]
    with pytest.raises(ValueError) as e:
        toy_processbench_records([GenerationRecord("q", "a", True)])
    assert str(e.value) == ("record 0: meta has no 'first_error_char' (the verifier's first wrong step; null: none), "
                            "so its first wrong step is unknown")
    with pytest.raises(ValueError) as e:
        toy_processbench_records([GenerationRecord("q", "A:1", False, None, {"first_error_char": 9})])
    assert str(e.value) == ("record 0: meta first_error_char must be null or a character offset in the response "
                            "(0..3), got 9")
