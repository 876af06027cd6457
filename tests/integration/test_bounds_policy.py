"""Per-token log-probabilities from a tiny random Llama in batched forward passes: equal to scoring every prefix on
its own, the top-k holding the most likely token, the EOS scored only for samples that generated it; the
bounds computed from them; and notebook 01's and 03's steps that score their samples with the policy."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gcrm_kit.bounds import world_bounds
from gcrm_kit.confidence import policy_logprobs
from gcrm_kit.data import GenerationRecord, encode
from gcrm_kit.toyworld import build_tokenizer

PROMPTS = ["1+2?", "3*4-1?", "7 plus 3 times 2?", "5-5?", "9%4?"]
RESPONSES = ["1+2=3;A:3", "3*4=2;2-1=1;A:1", "7+3=0;0*2=0;A:0", "5-5=0;A:0", "9%4=1;A:1"]


@pytest.fixture(scope="module")
def policy():
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)  # sharper distributions than a fresh init, so differences would show
    return model, tok


@torch.no_grad()
def prefix_logprobs(model, ids: list[int], start: int) -> tuple[np.ndarray, np.ndarray]:
    """Each token from `start` on scored by running the model on its prefix alone: (sampled (n,), full (n, V))."""
    sampled, full = [], []
    for t in range(start, len(ids)):
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].float(), -1)
        sampled.append(float(logp[ids[t]]))
        full.append(logp.numpy())
    return np.array(sampled), np.stack(full)


def test_batched_logprobs_equal_per_prefix_scores(policy):
    model, tok = policy
    eos = [True, True, False, True, False]
    out = policy_logprobs(model, tok, PROMPTS, RESPONSES, k=5, batch_size=2, eos=eos)  # 3 batches, padded
    assert len(out) == len(PROMPTS)
    for prompt, response, finished, lp in zip(PROMPTS, RESPONSES, eos, out):
        enc = encode(tok, prompt, response)
        ids = enc.input_ids if finished else enc.input_ids[:-1]
        assert len(lp.sampled) == len(response) + finished and lp.top.shape == (len(lp.sampled), 5)
        sampled, full = prefix_logprobs(model, ids, enc.response_start)
        np.testing.assert_allclose(lp.sampled, sampled, atol=1e-5)
        np.testing.assert_allclose(lp.top[:, 0], full.max(1), atol=1e-5)  # the argmax is in the top-k, first
        np.testing.assert_allclose(lp.top, -np.sort(-full, axis=1)[:, :5], atol=1e-5)
        assert (lp.top[:, :1] >= lp.sampled[:, None] - 1e-6).all()
    assert model.training is False


def test_bounds_from_policy_logprobs(policy):
    model, tok = policy
    records = [GenerationRecord(p, r, i % 2 == 0, r[-1], {"question_id": i}) for i, (p, r) in
               enumerate(zip(PROMPTS, RESPONSES))]
    lps = policy_logprobs(model, tok, PROMPTS, RESPONSES, k=4, batch_size=4)
    b = world_bounds(records, tok, lps, window=4, tail=4)
    assert set(b.confidence_auroc) == {"mean_logprob", "min_logprob", "lowest_group_confidence", "tail_confidence"}
    assert all(0.0 <= v <= 1.0 for v in b.confidence_auroc.values())
    mean = np.array([lp.sampled.mean() for lp in lps])
    correct = np.array([r.is_correct for r in records])
    pairs = [(c > w) + 0.5 * (c == w) for c in mean[correct] for w in mean[~correct]]
    assert b.confidence_auroc["mean_logprob"] == pytest.approx(np.mean(pairs))


def _toy_records(split):
    # meta as the toy world's samplers write it; the third response (15 tokens) is as long as a limit used below
    out = []
    for i, (resp, ok, fe) in enumerate([("1+2=3;A:3", True, None), ("1+2=4;A:4", False, 0),
                                         ("3*4=2;2-1=1;A:1", False, 0), ("1+2=3;A:3", True, None),
                                         ("7+3=0;0*2=1;A", False, 6)]):
        out.append(GenerationRecord(PROMPTS[i], resp, ok, None if resp.endswith("A") else resp[-1],
                                    {"split": split, "question_id": i // 2, "first_error_char": fe}))
    return out


def test_notebook_01_step_scores_with_the_policy_and_draws_no_random_numbers(tiny_policy_dir):
    import random
    from dataclasses import replace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gcrm_kit.params import RMTrainingParams
    from gcrm_kit.rm_training import RMData, world_bounds_of

    p = RMTrainingParams(device="cpu")
    p = replace(p, pairs=replace(p.pairs, max_new_tokens=15), evaluation=replace(p.evaluation, batch_size=2))
    world = RMData(tiny_policy_dir, {"id": _toy_records("id"), "verbal": _toy_records("verbal")[:3]}, [], [], {})
    random.seed(1)
    np.random.seed(1)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    bounds = world_bounds_of(p, world)
    assert torch.equal(torch.get_rng_state(), states[0]) and (np.random.get_state()[1] == states[1]).all()
    assert random.getstate() == states[2]
    assert set(bounds) == {"id", "verbal"} and world.world_bounds is bounds

    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    recs = world.eval_records["id"]
    eos = [len(r.response) < 15 for r in recs]  # the third was cut at the limit: no EOS scored or counted
    assert eos == [True, True, False, True, True]
    lps = policy_logprobs(model, tok, [r.prompt for r in recs], [r.response for r in recs], eos=eos)
    expected = world_bounds([replace(r, meta={**r.meta, "finished": e}) for r, e in zip(recs, eos)], tok, lps)
    assert bounds["id"].as_dict() == expected.as_dict()
    assert bounds["id"].tokens_generated == sum(len(r.response) for r in recs) + 4
    assert bounds["id"].first_error.n_located == 3 and bounds["verbal"].n_samples == 3


def test_notebook_03_step_scores_the_test_samples(tiny_policy_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gcrm_kit.filtering import make_sample_set, world_bounds_of
    from gcrm_kit.filtering.setup import RMSetup
    from gcrm_kit.params import FilteringParams, RMTrainingParams

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    recs = _toy_records("id")
    for j, r in enumerate(recs):
        r.meta.update(uid=j, finished=j != 2)
    samples = {"validation": None, "test": make_sample_set("test", recs, tok)}
    setup = RMSetup(tmp_path, RMTrainingParams(), tiny_policy_dir, [0],
                    {"goal": [tiny_policy_dir], "baseline": [tiny_policy_dir]}, {"goal": "g", "baseline": "b"})
    p = FilteringParams(device="cpu", batch_size=3)
    b = world_bounds_of(p, setup, samples)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    eos = [j != 2 for j in range(len(recs))]
    lps = policy_logprobs(model, tok, [r.prompt for r in recs], [r.response for r in recs], eos=eos)
    assert b.as_dict() == world_bounds(recs, tok, lps).as_dict()
    assert b.tokens_generated == int(samples["test"].length.sum())  # the methods' token accounting
    assert b.n_questions == 3 and b.vote_oracle_saving > 0
    assert world_bounds_of(FilteringParams(generations="x.jsonl"), setup, samples) is None
    assert "world bounds skipped" in capsys.readouterr().out
