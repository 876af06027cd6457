"""Per-token values in one forward pass: the same numbers whatever the batch or padding side, causal, equal to
re-scoring every prefix; prototypes built from labelled sets, saved with provenance and loaded by name."""

import numpy as np
import pytest
import torch

from gcrm_kit.data import encode, pad_batch
from gcrm_kit.models import reward_forward, reward_model_from_policy
from gcrm_kit.qvalues import (build_prototype, build_prototypes, char_to_token, list_prototypes,
                              load_prototypes, q_values, response_token_index, token_values)

PROMPTS = ["1+2?", "3*4-1?", "7 plus 3 times 2?", "5-5?"]
RESPONSES = ["1+2=3;A:3", "3*4=2;2-1=1;A:1", "7+3=0;0*2=0;A:0", "5-5=0;A:0"]


@pytest.fixture(scope="module")
def rm(tiny_policy_dir):
    model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
    with torch.no_grad():
        model.score.weight.normal_()  # a head far from zero, so that differences would show
    return model.eval(), tok


@pytest.fixture(scope="module")
def protos():
    g = torch.Generator().manual_seed(1)
    return {"a": torch.randn(32, generator=g), "b": torch.randn(32, generator=g)}


def _same(a, b, atol=1e-5):
    for k in a.q:
        np.testing.assert_allclose(a.q[k], b.q[k], atol=atol, equal_nan=True)
    np.testing.assert_allclose(a.head, b.head, atol=atol, equal_nan=True)
    np.testing.assert_array_equal(a.lengths, b.lengths)


def test_values_do_not_depend_on_batch_or_padding_side(rm, protos):
    model, tok = rm
    ref = token_values(model, tok, PROMPTS, RESPONSES, protos, batch_size=len(PROMPTS))
    for side in ("right", "left"):
        for bs in (1, 3):
            _same(token_values(model, tok, PROMPTS, RESPONSES, protos, batch_size=bs, padding_side=side), ref)
    # a sequence alone equals the same sequence in a batch with a much longer neighbour
    long = token_values(model, tok, [PROMPTS[0], "9*9*9*9*9*9?"], [RESPONSES[0], "9*9=1;" * 6 + "A:1"], protos,
                        batch_size=2, padding_side="left")
    alone = token_values(model, tok, PROMPTS[:1], RESPONSES[:1], protos)
    np.testing.assert_allclose(long.q["a"][0, : alone.lengths[0] + 1], alone.row("a", 0), atol=1e-5)


def test_values_layout_and_reward_at_the_eos(rm, protos):
    model, tok = rm
    tv = token_values(model, tok, PROMPTS, RESPONSES, protos, keep_hidden=True)
    assert list(tv.lengths) == [len(r) + 1 for r in RESPONSES]  # characters + EOS
    assert tv.tokens[0][-1] == tok.eos_token and "".join(tv.tokens[0][:-1]) == RESPONSES[0]
    assert np.isnan(tv.head[0, tv.lengths[0] + 1:]).all() and not np.isnan(tv.row("head", 0)).any()
    seqs = [encode(tok, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    b = pad_batch(seqs, tok.pad_token_id)
    with torch.no_grad():
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
    np.testing.assert_allclose(tv.rewards, out.rewards.numpy(), atol=1e-5)
    # column 0 is the prompt's last token; Q equals the reference cosine there and everywhere
    for i, s in enumerate(seqs):
        h = out.hidden[i, s.response_start - 1: len(s.input_ids)]
        np.testing.assert_allclose(tv.row("b", i), q_values(h, protos["b"]).numpy(), atol=1e-5)
        np.testing.assert_allclose(tv.hidden[i], h.numpy(), atol=1e-5)
    assert tv.at_fraction("head", 1.0).tolist() == pytest.approx(tv.rewards.tolist())
    assert (tv.columns_at(0.0) == 0).all() and (tv.columns_at(1.0) == tv.lengths).all()
    assert tv.columns_at(0.5)[0] == 5  # 10 tokens: half read is 5


def test_values_are_causal(rm, protos):
    """The value after token t does not change when the tokens after t change."""
    model, tok = rm
    a = token_values(model, tok, ["3*4-1?"], ["3*4=2;2-1=1;A:1"], protos)
    b = token_values(model, tok, ["3*4-1?"], ["3*4=2;9+9=8;8*8=4;A:4"], protos)
    t = len("3*4=2;")  # identical first 6 response tokens: columns 0..6
    np.testing.assert_allclose(a.q["a"][0, : t + 1], b.q["a"][0, : t + 1], atol=1e-5)
    np.testing.assert_allclose(a.head[0, : t + 1], b.head[0, : t + 1], atol=1e-5)
    assert not np.allclose(a.head[0, t + 2], b.head[0, t + 2], atol=1e-4)  # the test can fail


def test_one_pass_equals_rescoring_every_prefix(rm, protos):
    model, tok = rm
    prompt, resp = PROMPTS[2], RESPONSES[2]
    tv = token_values(model, tok, [prompt], [resp], protos)
    full = encode(tok, prompt, resp).input_ids
    rs = encode(tok, prompt, resp).response_start
    for k in range(len(full) - rs + 1):  # prefix ending at column k
        ids = torch.tensor([full[: rs + k]])
        with torch.no_grad():
            out = reward_forward(model, ids, torch.ones_like(ids))
        assert tv.q["a"][0, k] == pytest.approx(q_values(out.hidden[0, -1], protos["a"]).item(), abs=1e-5)
        assert tv.head[0, k] == pytest.approx(out.token_rewards[0, -1].item(), abs=1e-5)


def test_prototypes_from_labelled_sets_saved_and_loaded_by_name(rm, tmp_path):
    model, tok = rm
    labels = ["correct", "incorrect", "correct", None]
    got = build_prototypes(model, tok, PROMPTS, RESPONSES, labels, pooling="mean",
                           provenance={"checkpoint": "ckpt", "data": "test set"})
    assert list(got) == ["correct", "incorrect"]
    assert got["correct"].provenance["count"] == 2 and got["correct"].provenance["label"] == "correct"
    direct = build_prototype(model, tok, [PROMPTS[0], PROMPTS[2]], [RESPONSES[0], RESPONSES[2]], "x", "mean")
    assert torch.allclose(direct.vector, got["correct"].vector, atol=1e-6)
    rnd = build_prototype(model, tok, PROMPTS, RESPONSES, "correct_random", "random", seed=3)
    assert rnd.provenance["seed"] == 3 and not torch.allclose(rnd.vector, direct.vector)
    for p in [*got.values(), rnd]:
        p.save(tmp_path)
    assert list_prototypes(tmp_path) == ["correct", "correct_random", "incorrect"]
    loaded = load_prototypes(tmp_path, ["incorrect", "correct"])
    assert list(loaded) == ["incorrect", "correct"]
    prov = loaded["correct"].provenance
    for key in ("checkpoint", "layer", "pooling", "data", "count"):
        assert key in prov
    assert prov["pooling"] == "mean" and prov["checkpoint"] == "ckpt"
    assert torch.allclose(loaded["incorrect"].vector, got["incorrect"].vector)
    with pytest.raises(ValueError, match="unknown pooling"):
        build_prototype(model, tok, PROMPTS, RESPONSES, "x", "max")
    # loaded prototypes go straight into token_values
    tv = token_values(model, tok, PROMPTS, RESPONSES, loaded)
    assert set(tv.q) == {"incorrect", "correct"}


def test_char_offsets_map_to_tokens(tokenizer):
    assert response_token_index(tokenizer, "7+3=0;0*2=1;A:1", 6) == 6  # one character, one token
    assert response_token_index(tokenizer, "7+3=0", None) is None
    assert response_token_index(tokenizer, "7+3=0", 5) is None
    # a tokenizer with multi-character tokens and a gap between them
    offsets = [(0, 3), (4, 6), (6, 9)]
    assert [char_to_token(offsets, c) for c in (0, 2, 3, 4, 5, 8, 9)] == [0, 0, 1, 1, 1, 2, None]


def test_pooled_states_many_equal_one_sequence_at_a_time(rm):
    from gcrm_kit.qvalues import pooled_states, pooled_states_many

    model, tok = rm
    many = pooled_states_many(model, tok, PROMPTS, RESPONSES, ["last", "mean", "random"], batch_size=3, seed=5)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        e = encode(tok, p, r)
        with torch.no_grad():
            ids = torch.tensor([e.input_ids])
            h = reward_forward(model, ids, torch.ones_like(ids)).hidden[0]
        resp = h[e.response_start:]
        assert torch.allclose(many["last"][i], h[-1], atol=1e-5)
        assert torch.allclose(many["mean"][i], resp.mean(0), atol=1e-5)
        assert any(torch.allclose(many["random"][i], row, atol=1e-5) for row in resp)  # one of its own tokens
    # the random draws do not depend on the batch size; another seed draws other tokens
    again = pooled_states(model, tok, PROMPTS, RESPONSES, "random", batch_size=1, seed=5)
    assert torch.allclose(again, many["random"], atol=1e-5)
    other = pooled_states(model, tok, PROMPTS, RESPONSES, "random", batch_size=1, seed=6)
    assert not torch.allclose(other, many["random"], atol=1e-5)
