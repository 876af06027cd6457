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
