"""Online pruning on a tiny random policy and reward model: per-sample sampling makes samples independent of
batching and chunking, the reward model's incremental scores equal one full pass, each token is read once, and
online decisions equal the offline rule applied to the finished samples."""

import numpy as np
import pytest

from gcrm_kit.data import GenerationRecord, load_jsonl, save_jsonl
from gcrm_kit.filtering import (CutScorer, RewardModelScorer, evaluate_offline, generate_pruned, make_sample_set,
                                prune_positions, score_sample_set, split_generations, threshold_grid)
from gcrm_kit.generation import sample_responses
from gcrm_kit.params import FilteringParams, from_dict

pytestmark = pytest.mark.slow

PROMPTS = ["1+2*3?", "4-5+6*7-1?", "9*9?", "3 plus 4 times 2?"] * 5
# an untrained model emits anything; special tokens would not survive decoding, which the offline side relies on
GEN = dict(max_new_tokens=40, temperature=1.5, seed=3, suppress_tokens=["<s>", "<pad>", "<unk>"])


@pytest.fixture(scope="module")
def full(models):
    policy, tokenizer, _, _ = models
    return generate_pruned(policy, tokenizer, PROMPTS, list(range(len(PROMPTS))), chunk_size=40, batch_size=64, **GEN)


def as_sample_set(tokenizer, gen):
    # answers do not matter here; every sample needs one for a sample set (no answers at all would be an error)
    recs = [GenerationRecord(p, tokenizer.decode(r, skip_special_tokens=True), False, str(u % 3),
                             {"uid": u, "finished": f})
            for p, r, u, f in zip(PROMPTS, gen.response_ids, gen.uids, gen.finished)]
    ss = make_sample_set("t", recs, tokenizer)
    # make_sample_set groups by prompt: the map back to generation order
    return ss, [int(r.meta["uid"]) for r in ss.records]


def test_samples_do_not_depend_on_batching_or_chunks(models, full):
    policy, tokenizer, _, _ = models
    assert 0 < sum(full.finished) < len(PROMPTS)  # some samples end early, some run to the limit
    uids = list(range(len(PROMPTS)))
    chunked = generate_pruned(policy, tokenizer, PROMPTS, uids, chunk_size=3, batch_size=7, **GEN)
    assert chunked.response_ids == full.response_ids and chunked.finished == full.finished
    rev = generate_pruned(policy, tokenizer, PROMPTS[::-1], uids[::-1], chunk_size=5, batch_size=3, **GEN)
    assert rev.response_ids[::-1] == full.response_ids
    assert full.policy_tokens == sum(len(r) for r in full.response_ids)
    other = generate_pruned(policy, tokenizer, PROMPTS, [u + 100 for u in uids], chunk_size=40, batch_size=64, **GEN)
    assert other.response_ids != full.response_ids


@pytest.mark.parametrize("signal", ["q", "token_reward"])
def test_incremental_scores_equal_one_pass_and_read_each_token_once(models, full, signal):
    policy, tokenizer, rm, goal = models
    scorer = RewardModelScorer(rm, signal, goal)
    gen = generate_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=scorer, chunk_size=4, batch_size=6, **GEN)
    assert gen.response_ids == full.response_ids and all(t < 0 for t in gen.pruned_at)
    prompt_tokens = sum(1 + len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS)
    # prompts are padded to their batch's width; the padding is read but masked, real tokens are read once
    assert gen.scorer_tokens == prompt_tokens + gen.policy_tokens
    ss, order = as_sample_set(tokenizer, full)
    one = score_sample_set(rm, tokenizer, goal, ss)
    ref = one.q if signal == "q" else one.token_reward
    assert ss.length.tolist() == [len(full.response_ids[uid]) for uid in order]  # EOS only where generated
    for row, uid in enumerate(order):
        inc = np.array(gen.scores[uid])  # offline scores exactly the tokens online generated, EOS included or not
        assert len(inc) == ss.length[row] and np.isnan(ref[row, len(inc):]).all()
        np.testing.assert_allclose(inc, ref[row, :len(inc)], atol=1e-5)


def test_online_decisions_equal_the_offline_rule(models, full):
    policy, tokenizer, rm, goal = models
    ss, order = as_sample_set(tokenizer, full)
    q = score_sample_set(rm, tokenizer, goal, ss).q
    # the offline rule on the finished samples, at a threshold that prunes some of them
    tau = float(threshold_grid(q, 5, [0.5])[0])
    offline = prune_positions(q, tau, 5)
    chunk = 4
    gen = generate_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal),
                          threshold=tau, skip_tokens=5, chunk_size=chunk, batch_size=6, **GEN)
    for row, uid in enumerate(order):
        t = gen.pruned_at[uid]
        assert offline[row] < len(full.response_ids[uid])  # never at a token that was not generated
        assert t == offline[row]
        if t < 0:
            assert gen.response_ids[uid] == full.response_ids[uid]
        else:
            # stopped within the chunk in which its Q-value fell: a prefix, at most chunk - 1 tokens past t
            assert gen.response_ids[uid] == full.response_ids[uid][:len(gen.response_ids[uid])]
            assert t + 1 <= len(gen.response_ids[uid]) < t + 1 + chunk
    assert 0 < sum(t >= 0 for t in gen.pruned_at) < len(PROMPTS)
    assert gen.policy_tokens < full.policy_tokens


def test_sample_responses_reports_which_samples_finished(models):
    policy, tokenizer, _, _ = models
    outs, fins = sample_responses(policy, tokenizer, PROMPTS[:4], n=5, temperature=1.5, max_new_tokens=40, seed=3,
                                  suppress_tokens=GEN["suppress_tokens"], return_finished=True)
    assert [len(f) for f in fins] == [5] * 4 and 0 < sum(map(sum, fins)) < 20
    for texts, fs in zip(outs, fins):
        for text, f in zip(texts, fs):  # the EOS is not in the text; only the flag tells a sample that was cut
            n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            assert (n < 40) if f else (n == 40)
    plain = sample_responses(policy, tokenizer, PROMPTS[:1], n=2, max_new_tokens=5)  # default: the texts alone
    assert len(plain) == 1 and len(plain[0]) == 2 and all(isinstance(t, str) for t in plain[0])


def test_cut_scorer_prunes_where_told(models, full):
    policy, tokenizer, _, _ = models
    long = [u for u, r in zip(full.uids, full.response_ids) if len(r) > 12]
    cuts = {u: 6 + (u % 5) for u in long[:4]}
    gen = generate_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=CutScorer(cuts), threshold=0.0,
                          skip_tokens=5, chunk_size=1, batch_size=8, **GEN)
    for u in full.uids:
        assert gen.pruned_at[u] == cuts.get(u, -1)
        if u in cuts:  # chunk size 1: nothing is generated past the cut
            assert len(gen.response_ids[u]) == cuts[u] + 1
    assert gen.scorer_tokens == 0


def test_offline_filtering_runs_on_a_file_of_generation_records(models, tmp_path):
    """The offline path needs only generation records (prompt, response, is_correct, answer), as at full scale."""
    _, tokenizer, rm, goal = models
    rng = np.random.default_rng(0)
    recs = []
    for q in range(8):
        for j in range(4):
            a = int(rng.integers(3))
            recs.append(GenerationRecord(f"{q}+{q}?", f"{q}+{q}={a};A:{a}", a == 0, str(a)))
    path = save_jsonl(recs, tmp_path / "gen.jsonl")
    p = from_dict(FilteringParams, {"generations": str(path), "n_validation_questions": 4, "n_test_questions": 0,
                                    "threshold_quantiles": [0.0, 0.5, 1.0], "random_repeats": 2, "skip_tokens": 2})
    raw = split_generations(p, load_jsonl(path, GenerationRecord))
    samples = {s: make_sample_set(s, raw[s], tokenizer) for s in ("validation", "test")}
    scores = {(w, 0): {s: score_sample_set(rm, tokenizer, goal, ss) for s, ss in samples.items()}
              for w in ("goal", "baseline")}
    off = evaluate_offline(p, samples, scores, [0])
    methods = {r["method"] for r in off.rows}
    assert {"majority", "q_goal", "token_reward_baseline", "random", "best_of_n_goal", "weighted_goal"} <= methods
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in off.rows)
    assert len(off.frontier) == 4 * 2 * 3 + 3
