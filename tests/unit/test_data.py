import json

import pytest

from gcrm_kit.data import (DataError, GenerationRecord, PairCollator, PreferencePair, check_tokenizer, encode,
                           encode_pairs, load_jsonl, pad_batch, save_jsonl)


def test_jsonl_round_trip(tmp_path):
    pairs = [PreferencePair("1+1?", "1+1=2;A:2", "1+1=3;A:3", {"split": "id"})]
    path = save_jsonl(pairs, tmp_path / "p.jsonl")
    assert load_jsonl(path, PreferencePair) == pairs


@pytest.mark.parametrize("content,match", [
    ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"\n', r"p\.jsonl:2: not valid JSON"),
    ('{"prompt": "a", "chosen": "b"}\n', r"p\.jsonl:1: missing key 'rejected'"),
    ('{"prompt": "a", "chosen": "b", "rejected": "c", "score": 1}\n', r"p\.jsonl:1: unknown key\(s\) \['score'\]"),
    ('{"prompt": "a", "chosen": 3, "rejected": "c"}\n', r"p\.jsonl:1: key 'chosen' must be a string"),
    ('[1, 2]\n', r"p\.jsonl:1: expected a JSON object"),
    ('\n\n', r"p\.jsonl: no records"),
])
def test_bad_jsonl_names_file_line_and_key(tmp_path, content, match):
    (tmp_path / "p.jsonl").write_text(content)
    with pytest.raises(DataError, match=match):
        load_jsonl(tmp_path / "p.jsonl", PreferencePair)


def test_generation_record_label_must_be_bool(tmp_path):
    (tmp_path / "g.jsonl").write_text(json.dumps({"prompt": "a", "response": "b", "is_correct": "yes"}) + "\n")
    with pytest.raises(DataError, match="is_correct"):
        load_jsonl(tmp_path / "g.jsonl", GenerationRecord)


def test_generation_records_accept_question_and_solution(tmp_path):
    lines = [{"question": "1+1?", "solution": "1+1=2;A:2", "answer": "2", "is_correct": True},
             {"prompt": "1+1?", "response": "1+1=3;A:3", "answer": "3", "is_correct": False, "meta": {"k": 1}}]
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    recs = load_jsonl(tmp_path / "g.jsonl", GenerationRecord)
    assert recs == [GenerationRecord("1+1?", "1+1=2;A:2", True, "2"),
                    GenerationRecord("1+1?", "1+1=3;A:3", False, "3", {"k": 1})]


GOOD = {"prompt": "a", "response": "b", "is_correct": True}


@pytest.mark.parametrize("line,match", [
    ({**GOOD, "question": "a"}, r"g\.jsonl:2: both 'prompt' and its alias 'question'"),
    ({**GOOD, "solution": "b"}, r"g\.jsonl:2: both 'response' and its alias 'solution'"),
    ({"question": "a", "is_correct": True}, r"g\.jsonl:2: missing key 'response' \(or 'solution'\)"),
    ({"question": 3, "solution": "b", "is_correct": True}, r"g\.jsonl:2: key 'prompt' must be a string"),
    ({**GOOD, "answer": 4}, r"g\.jsonl:2: key 'answer' must be a string"),
    ({**GOOD, "meta": [1]}, r"g\.jsonl:2: key 'meta' must be a JSON object"),
])
def test_bad_generation_records_name_file_line_and_key(tmp_path, line, match):
    good = {"prompt": "a", "response": "b", "is_correct": False, "answer": None}
    (tmp_path / "g.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(DataError, match=match):
        load_jsonl(tmp_path / "g.jsonl", GenerationRecord)


def test_required_optional_field(tmp_path):
    """`require` makes an optional field mandatory on every line; null still counts as given."""
    lines = [{"prompt": "a", "response": "b", "is_correct": False, "answer": None},
             {"prompt": "a", "response": "c", "is_correct": True}]
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert len(load_jsonl(tmp_path / "g.jsonl", GenerationRecord)) == 2
    with pytest.raises(DataError, match=r"g\.jsonl:2: missing key 'answer'"):
        load_jsonl(tmp_path / "g.jsonl", GenerationRecord, require=("answer",))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_jsonl(tmp_path / "nope.jsonl", PreferencePair)


def test_encode_format_and_response_span(tokenizer):
    e = encode(tokenizer, "1+2?", "1+2=3;A:3")
    assert e.input_ids[0] == tokenizer.bos_token_id and e.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(e.input_ids[e.response_start:], skip_special_tokens=True) == "1+2=3;A:3"
    assert e.response_len == len("1+2=3;A:3") + 1  # response characters and the EOS
    with pytest.raises(ValueError, match="empty response"):
        encode(tokenizer, "1+2?", "")


def test_encode_pairs_counts_skips(tokenizer):
    pairs = [
        PreferencePair("1+2?", "1+2=3;A:3", "1+2=4;A:4"),
        PreferencePair("1+2?", "1+2=3;A:3", "1+2=3;A:3"),  # identical
        PreferencePair("1+2?", "", "1+2=4;A:4"),  # empty
        PreferencePair("1+2?", "1+2=3;A:3" * 20, "1+2=4;A:4"),  # too long
    ]
    enc, report = encode_pairs(tokenizer, pairs, max_length=40)
    assert len(enc) == 1 and report.kept == 1
    assert report.skipped == {"identical chosen and rejected": 1, "empty response": 1, "longer than max_length=40": 1}


def test_tokenizer_without_pad_or_with_pad_equal_eos_is_refused(tokenizer):
    import copy

    t = copy.deepcopy(tokenizer)
    t.pad_token = t.eos_token
    with pytest.raises(ValueError, match="pad token equals its EOS"):
        check_tokenizer(t)
    t.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        check_tokenizer(t)
    t.name_or_path = "/models/my-backbone"
    with pytest.raises(ValueError, match="tokenizer of /models/my-backbone has no pad token.*model.pad_token"):
        check_tokenizer(t)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch_masks_and_positions(tokenizer, side):
    a, b = encode(tokenizer, "1+2?", "1+2=3;A:3"), encode(tokenizer, "1+2*3?", "1+2=3;3*3=9;A:9")
    out = pad_batch([a, b], tokenizer.pad_token_id, side)
    for i, e in enumerate((a, b)):
        real = out["attention_mask"][i].bool()
        assert out["input_ids"][i][real].tolist() == e.input_ids
        assert out["position_ids"][i][real].tolist() == list(range(len(e.input_ids)))
        assert int(out["response_mask"][i].sum()) == e.response_len
        assert bool((out["response_mask"][i] <= out["attention_mask"][i]).all())


def test_pair_collator_puts_chosen_first(tokenizer):
    enc, _ = encode_pairs(tokenizer, [PreferencePair("1?", "A:1", "A:2"), PreferencePair("2?", "A:2", "A:3")], 64)
    batch = PairCollator(tokenizer.pad_token_id)(enc)
    texts = tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
    assert texts == ["1?A:1", "2?A:2", "1?A:2", "2?A:3"]
