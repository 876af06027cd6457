"""The cached decoding loop of online pruning (`decode_pruned`) on a tiny random policy and reward model: its samples
are those of the chunked sampler token for token, pruned samples stop at the scoring point that read the token whose
score fell (every k tokens, or a step boundary), and dropping rows keeps the remaining rows' caches right."""

import numpy as np
import pytest
import torch

from gcrm_kit.data import pad_ids
from gcrm_kit.filtering import (PolicyStepper, RewardModelScorer, decode_pruned, generate_pruned, prune_positions,
                                threshold_grid)

pytestmark = pytest.mark.slow

PROMPTS = ["1+2*3?", "4-5+6*7-1?", "9*9?", "3 plus 4 times 2?"] * 5
GEN = dict(max_new_tokens=40, temperature=1.5, seed=3, suppress_tokens=["<s>", "<pad>", "<unk>"])


@pytest.fixture(scope="module")
def full(models):
    """The chunked sampler's samples (one `generate` call per batch), each scored in full by the reward model."""
    policy, tokenizer, rm, goal = models
    return generate_pruned(policy, tokenizer, PROMPTS, list(range(len(PROMPTS))),
                           scorer=RewardModelScorer(rm, "q", goal), chunk_size=40, batch_size=64, **GEN)


def q_matrix(gen) -> np.ndarray:
    q = np.full((len(gen.uids), max(map(len, gen.scores))), np.nan)
    for i, s in enumerate(gen.scores):
        q[i, :len(s)] = s
    return q


def test_unpruned_samples_and_scores_equal_the_chunked_sampler(models, full):
    policy, tokenizer, rm, goal = models
    assert 0 < sum(full.finished) < len(PROMPTS)  # some samples end early: rows leave the batch mid-way
    uids = full.uids
    plain = decode_pruned(policy, tokenizer, PROMPTS, uids, batch_size=7, **GEN)
    assert plain.response_ids == full.response_ids and plain.finished == full.finished
    assert plain.policy_tokens == full.policy_tokens and plain.scorer_tokens == 0
    scored = decode_pruned(policy, tokenizer, PROMPTS, uids, scorer=RewardModelScorer(rm, "q", goal), score_every=3,
                           batch_size=6, **GEN)
    assert scored.response_ids == full.response_ids and all(t < 0 for t in scored.pruned_at)
    assert scored.scorer_tokens == full.scorer_tokens  # every token read once, prompts included
    for a, b in zip(scored.scores, full.scores):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("k", [1, 4])
def test_pruned_rows_stop_at_the_read_after_their_score_fell(models, full, k):
    policy, tokenizer, rm, goal = models
    q = q_matrix(full)
    tau = float(threshold_grid(q, 5, [0.5])[0])
    offline = prune_positions(q, tau, 5)
    gen = decode_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal), threshold=tau,
                        skip_tokens=5, score_every=k, batch_size=6, **GEN)
    assert gen.pruned_at == offline.tolist() and 0 < sum(offline >= 0) < len(PROMPTS)
    for u, t in enumerate(gen.pruned_at):
        ref = full.response_ids[u]
        stop = len(ref) if t < 0 else min(-(-(t + 1) // k) * k, len(ref))  # the first multiple of k past t
        assert gen.response_ids[u] == ref[:stop]
        # the kept rows' scores after their neighbours left the scorer's cache: those of one full pass
        np.testing.assert_allclose(gen.scores[u], full.scores[u][:stop], atol=1e-5)
    assert gen.policy_tokens < full.policy_tokens


def test_pruned_rows_stop_at_their_step_boundary(models, full):
    policy, tokenizer, rm, goal = models
    # the step separator of this test: the token the random policy writes most often (the toy world's is ";")
    counts = np.bincount([x for r in full.response_ids for x in r if x != tokenizer.eos_token_id])
    sep = int(counts.argmax())
    q = q_matrix(full)
    tau = float(threshold_grid(q, 5, [0.5])[0])
    offline = prune_positions(q, tau, 5)
    sep_s = tokenizer.convert_ids_to_tokens(sep)
    # one row per batch: the reads are that row's own step boundaries (in a batch, any row's boundary is a read)
    gen = decode_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal), threshold=tau,
                        skip_tokens=5, score_every=0, score_at=sep_s, batch_size=1, **GEN)
    assert gen.pruned_at == offline.tolist()
    moved = 0
    for u, t in enumerate(gen.pruned_at):
        ref = full.response_ids[u]
        if t < 0:
            assert gen.response_ids[u] == ref
            continue
        ends = [j for j in range(t, len(ref)) if ref[j] == sep]
        stop = ends[0] + 1 if ends else len(ref)
        assert gen.response_ids[u] == ref[:stop]
        moved += stop > t + 1
    assert moved > 0  # some samples wrote on to the end of their step before the read
    batched = decode_pruned(policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal),
                            threshold=tau, skip_tokens=5, score_every=0, score_at=sep_s, batch_size=8, **GEN)
    assert batched.pruned_at == gen.pruned_at  # where a read happens never changes a decision


def test_dropping_rows_keeps_the_policy_cache_right(models):
    policy, tokenizer, _, _ = models
    enc = [[tokenizer.bos_token_id] + tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS[:5]]
    ids, att = pad_ids(enc, tokenizer.pad_token_id, side="left")
    stepper = PolicyStepper(policy)
    rows, seqs = list(range(5)), [list(e) for e in enc]
    logits = stepper.start(ids, att)
    for t, keep in enumerate([None, [0, 2, 3, 4], None, [1, 3], None]):
        if keep is not None:  # drop rows, as pruning does: the kept rows must continue unchanged
            stepper.select(torch.tensor(keep))
            rows, logits = [rows[j] for j in keep], logits[keep]
        tok = logits.argmax(-1)
        for r, k in zip(rows, tok.tolist()):
            seqs[r].append(k)
        logits = stepper.step(tok)
        fresh_ids, fresh_att = pad_ids([seqs[r] for r in rows], tokenizer.pad_token_id, side="left")
        pos = (fresh_att.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            ref = policy(input_ids=fresh_ids, attention_mask=fresh_att, position_ids=pos).logits[:, -1].float()
        torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    assert len(rows) == 2 and stepper.cache.get_seq_length() == ids.shape[1] + 5


def test_bad_scoring_points_are_refused(models):
    policy, tokenizer, rm, goal = models
    with pytest.raises(ValueError, match="score_at='no such token' is not one token of the tokenizer"):
        decode_pruned(policy, tokenizer, PROMPTS[:2], [0, 1], scorer=RewardModelScorer(rm, "q", goal),
                      score_at="no such token", **GEN)
    with pytest.raises(ValueError, match="score_every=0: expected a positive number of tokens"):
        decode_pruned(policy, tokenizer, PROMPTS[:2], [0, 1], scorer=RewardModelScorer(rm, "q", goal), score_every=0,
                      **GEN)


def test_online_runs_take_the_loop_the_params_name(models, full):
    """`evaluate_online`'s runs: params `online.loop` picks the loop; both make the same samples and decisions."""
    from gcrm_kit.filtering.online import run_loop
    from gcrm_kit.params import FilteringParams, from_dict

    policy, tokenizer, rm, goal = models
    tau = float(threshold_grid(q_matrix(full), 5, [0.5])[0])
    gens = {}
    for loop, extra in (("cached", {"score_at": ""}), ("chunked", {})):
        o = from_dict(FilteringParams, {"online": {"loop": loop, **extra}}).online
        gens[loop] = run_loop(o, policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal),
                              threshold=tau, chunk_size=4, skip_tokens=5, batch_size=6, **GEN)
    assert gens["cached"].pruned_at == gens["chunked"].pruned_at
    assert gens["cached"].response_ids == gens["chunked"].response_ids
    o = from_dict(FilteringParams, {"online": {"score_at": ";"}}).online
    at = run_loop(o, policy, tokenizer, PROMPTS, full.uids, scorer=RewardModelScorer(rm, "q", goal), threshold=tau,
                  chunk_size=40, skip_tokens=5, batch_size=1, **GEN)
    assert at.pruned_at == gens["cached"].pruned_at
    assert at.response_ids != gens["cached"].response_ids  # read at ";" (and at the end), not every 4 tokens
