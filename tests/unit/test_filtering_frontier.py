"""The accuracy-vs-compute frontier of notebook 03: the FLOP model, each method's stop point and vote on tiny
hand-made samples, the choice of an operating point on validation, and the error for a generations file without
log-probabilities."""

import json

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gcrm_kit.confidence import policy_logprobs
from gcrm_kit.data import GenerationRecord, PreferencePair
from gcrm_kit.filtering import make_sample_set
from gcrm_kit.filtering.consistency import adaptive_drawn, beta_lead_probability, esc_drawn, sequential_spend
from gcrm_kit.filtering.cost import (Spend, break_even_scorer_ratio, checkpoint_params, count_params, flops,
                                     prompt_tokens)
from gcrm_kit.filtering.deepconf import (file_logprobs, offline_spend, online_spend, policy_confidences,
                                         running_group_confidence)
from gcrm_kit.filtering.frontier import oracle_points, pruning_spend
from gcrm_kit.filtering.frontier_inputs import FrontierInputs
from gcrm_kit.filtering.operating import choose_point, evaluate_spend
from gcrm_kit.filtering.probe import (policy_states, probe_values, sample_values, train_probe,
                                      training_states)
from gcrm_kit.filtering.speculative import partial_scores, rejection_spend
from gcrm_kit.params import FilteringParams, ParamsError, from_dict


def rec(prompt, response, correct, answer, **meta):
    return GenerationRecord(prompt, response, correct, answer, meta=meta)


@pytest.fixture
def three_samples(tokenizer):
    """One question, three samples: answers 5 (right), 3, 5; lengths 4, 3, 2 characters + EOS."""
    recs = [rec("1+4?", "A:15", True, "5"), rec("1+4?", "A:3", False, "3"), rec("1+4?", "A5", True, "5")]
    return make_sample_set("t", recs, tokenizer)


def test_count_params_leaves_out_the_input_embedding_only(tmp_path):
    # vocab 10, width 4, one layer, one head of 4, MLP 8: attention 4 x 16, MLP 3 x 32, 2 layer norms + the final
    # one of 4 each, LM head 10 x 4 (untied): 64 + 96 + 12 + 40 = 212; the 40 of the input embedding are left out
    cfg = LlamaConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                      num_key_value_heads=1, intermediate_size=8, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == 252
    assert count_params(model) == 212
    model.save_pretrained(tmp_path)
    assert checkpoint_params(tmp_path, "causal_lm") == 212


def test_flops_count_prefill_generated_and_scorer_tokens():
    prompts = np.array([3, 4])
    s = Spend(started=np.array([True, False]), generated=np.array([5, 0]), kept=np.array([True, False]),
              scorer_read=np.array([8, 0]), scorer_params=10)
    f = flops(s, prompts, policy_params=100)
    # policy: 2 x 100 x (3 prompt + 5 generated); the unstarted sample's prompt is never read
    assert f["policy_flops"] == 1600 and f["scorer_flops"] == 2 * 10 * 8 and f["flops"] == 1760
    with pytest.raises(ValueError, match="never started"):
        flops(Spend(np.array([False]), np.array([2]), np.array([False])), np.array([1]), 1)
    # everything costs 2 x 100 x (3 + 4 + 6 + 6) = 3800; the spend saves 2 x 100 x (7 + 12 - 3 - 5) = 2200 policy
    # FLOPs and reads 8 tokens: a scorer below 2200 / (2 x 100 x 8) = 1.375 x the policy's size saves compute
    assert break_even_scorer_ratio(s, prompts, np.array([6, 6]), 100) == pytest.approx(1.375)


def test_evaluate_spend_prices_against_generating_everything(three_samples, tokenizer):
    ss = three_samples
    prompts = prompt_tokens(ss.records, tokenizer)
    assert prompts.tolist() == [5, 5, 5]  # BOS + 4 characters
    spend = Spend(np.array([True, True, False]), np.array([5, 2, 0]), np.array([True, False, False]))
    ev = evaluate_spend(ss, spend, prompts, 1.0, "random")
    # all: 15 prompt + 12 generated = 27 tokens; this one: 10 + 7 = 17
    assert ev["share_compute_saved"] == pytest.approx(1 - 17 / 27)
    assert ev["share_tokens_saved"] == pytest.approx(1 - 7 / 12) and ev["accuracy"] == 1.0


def test_choose_point_takes_most_compute_saved_within_the_drop():
    pts = [{"accuracy": 0.80, "share_compute_saved": 0.0}, {"accuracy": 0.796, "share_compute_saved": 0.4},
           {"accuracy": 0.79, "share_compute_saved": 0.7}, {"accuracy": 0.80, "share_compute_saved": 0.4}]
    assert choose_point(pts, 0.80, 0.005) == 3  # 0.79 is 1 point down; of the two at 40%, the more accurate
    assert choose_point(pts, 0.80, 0.02) == 2
    assert choose_point([{"accuracy": 0.5, "share_compute_saved": 0.9}, {"accuracy": 0.6, "share_compute_saved": 0}],
                        0.9, 0.0) == 1  # none eligible: the most accurate


def test_esc_stops_after_the_first_window_that_agrees():
    assert esc_drawn(np.array([1, 2, 2, 2, 0, 0]), 2) == 4  # windows [1 2] no, [2 2] yes
    assert esc_drawn(np.array([0, 0, 1]), 2) == 2
    assert esc_drawn(np.array([-1, -1, 3, 4, 5]), 2) == 5  # samples without an answer never agree; last window short
    assert esc_drawn(np.array([1, 2, 3]), 3) == 3


def test_adaptive_consistency_beta_rule():
    assert beta_lead_probability(1, 0) == pytest.approx(0.75)
    assert beta_lead_probability(3, 1) == pytest.approx(26 / 32)  # 1 - I_0.5(4, 2) = 1 - 6/32
    # after 1: 0.75; 2: 0.5; 3 (2 vs 1): 11/16; 4 (3 vs 1): 26/32 >= 0.8
    assert adaptive_drawn(np.array([0, 1, 0, 0, 1]), 0.8) == 4
    assert adaptive_drawn(np.array([0, 1, 0, 0, 1]), 0.7) == 1 and adaptive_drawn(np.array([0, 1, 0, 0]), 0.76) == 4
    assert adaptive_drawn(np.array([0, 1]), 0.99) == 2


def test_sequential_spend_votes_over_the_drawn_samples_only(three_samples):
    ss = three_samples
    order = [np.array([1, 0, 2])]  # draw 3, then 5 (the right one), then 5
    s = sequential_spend(ss, order, "adaptive", 0.75)  # stops after the first sample: 3, wrong
    assert s.started.tolist() == [False, True, False] and s.generated.tolist() == [0, 4, 0]
    assert evaluate_spend(ss, s, np.zeros(3), 1.0, "random")["accuracy"] == 0.0
    s = sequential_spend(ss, order, "esc", 2)  # [3 5] disagree, the last window [5] is short: all three drawn
    assert s.started.all() and evaluate_spend(ss, s, np.zeros(3), 1.0, "random")["accuracy"] == 1.0


def test_deepconf_group_confidence_and_online_stop(three_samples):
    g = running_group_confidence(np.array([5.0, 5, 1, 1, 5]), 2)
    assert np.isnan(g[0]) and g[1:].tolist() == [5, 3, 1, 3]
    short = running_group_confidence(np.array([2.0, 4.0]), 4)
    assert np.isnan(short[0]) and short[1] == 3  # judged once, at its last token
    ss = three_samples  # lengths 5, 4, 3 (EOS included)
    confs = [np.array([4.0, 4, 4, 4, 4]), np.array([2.0, 2, 2, 2]), np.array([3.0, 1, 1])]
    # warm-up: samples 0 and 1, lowest group confidences 4 and 2; keep 50% -> threshold = median 3. Sample 2's
    # windows of 2: [nan, 2, 1] -> stops at token 1 having generated 2 tokens, and does not vote
    s = online_spend(ss, confs, [np.array([0, 1, 2])], 50, warmup=2, window=2)
    assert s.generated.tolist() == [5, 4, 2] and s.kept.tolist() == [True, True, False]
    assert s.weights.tolist() == [4, 2, 1]
    # keep 100%: threshold = the lowest warm-up confidence 2; sample 2 falls to 1 < 2 anyway
    assert online_spend(ss, confs, [np.array([0, 1, 2])], 100, 2, 2).kept.tolist() == [True, True, False]
    # a trace counted in another tokenizer's tokens (6 of them for 3 here): its stop maps by share of the response
    s = online_spend(ss, confs[:2] + [np.array([3.0, 3, 1, 1, 1, 1])], [np.array([0, 1, 2])], 50, 2, 2)
    assert s.generated[2] == 2  # stopped at token 2 of 6 -> 3 of 6 generated -> half of 3 tokens, rounded up


def test_deepconf_offline_keeps_the_most_confident_and_weights_the_vote(three_samples):
    ss = three_samples
    s = offline_spend(ss, np.array([1.0, 3.0, 0.5]), 50)  # ceil(1.5) = 2 kept: samples 1 (3) and 0 (5)
    assert s.kept.tolist() == [True, True, False] and s.generated.tolist() == ss.length.tolist()
    # weighted vote: 3 (weight 3) beats 5 (weight 1)
    assert evaluate_spend(ss, s, np.zeros(3), 1.0, "random")["accuracy"] == 0.0
    s = offline_spend(ss, np.array([1.0, 1.5, 1.0]), 100)  # all vote: 5 has 2 > 1.5
    assert evaluate_spend(ss, s, np.zeros(3), 1.0, "random")["accuracy"] == 1.0


def test_speculative_rejection_keeps_the_best_partial_samples(three_samples):
    ss = three_samples  # lengths 5, 4, 3
    tr = np.array([[0.1, 0.9, 0.0, 0.0, 0.0], [0.5, 0.2, 0.0, 0.0, np.nan], [0.0, 0.3, 0.8, np.nan, np.nan]])
    assert partial_scores(tr, ss.length, 1).tolist() == [0.9, 0.2, 0.3]
    assert partial_scores(tr, ss.length, 9).tolist() == [0.0, 0.0, 0.8]  # past its end: read at the last token
    s = rejection_spend(ss, tr, np.array([5, 5, 5]), 1, 0.5, scorer_params=7)  # keep ceil(1.5) = 2: samples 0, 2
    assert s.kept.tolist() == [True, False, True] and s.generated.tolist() == [5, 2, 3]
    assert s.scorer_read.tolist() == [7, 7, 7] and s.scorer_params == 7  # prompt 5 + 2 tokens each


def test_pruning_spend_matches_the_existing_accounting(three_samples):
    ss = three_samples
    s = pruning_spend(ss, np.array([-1, 1, -1]), np.array([5, 5, 5]), 3.0, "random", "abstain")
    assert s.generated.tolist() == [5, 2, 3] and s.scorer_read.tolist() == [10, 7, 8]
    s = pruning_spend(ss, np.array([0, 0, 0]), np.array([5, 5, 5]), 3.0, "random", "unfiltered")
    assert s.generated.tolist() == [5, 4, 3] and s.credit.tolist() == [1.0]  # all pruned: vote over all


def test_first_error_oracle_stops_wrong_samples_after_their_first_wrong_step(tokenizer):
    recs = [rec("1+4?", "1+4=5;A:5", True, "5", first_error_char=None, question_id=0),
            rec("1+4?", "1+4=3;A:3", False, "3", first_error_char=0, question_id=0),
            rec("1+4?", "1+4=3;A:3", False, "3", first_error_char=0, question_id=0)]
    ss = make_sample_set("test", recs, tokenizer)
    inp = FrontierInputs({"test": prompt_tokens(recs, tokenizer)}, 1.0, {}, tokenizer)
    pts, skipped = oracle_points(ss, inp, "random")
    fe = next(x for x in pts if x["method"] == "oracle_first_error")
    # each wrong sample generates "1+4=3;" (6 tokens) of 10, stops, and does not vote: the right answer wins
    assert fe["accuracy"] == 1.0 and fe["share_tokens_saved"] == pytest.approx(1 - 22 / 30)
    vote = next(x for x in pts if x["method"] == "oracle_vote")
    assert vote["accuracy"] == 0.0 and not skipped  # the vote (3 over 5) is kept, wrong as it is


def test_generations_without_logprobs_name_file_line_and_key(tmp_path, tokenizer):
    path = tmp_path / "gens.jsonl"
    good = {"prompt": "1+4?", "response": "A:5", "is_correct": True, "answer": "5",
            "meta": {"uid": 0, "token_logprobs": [-0.1, -0.2, -0.3, -0.1], "top_logprobs": [[-0.1, -2.5]] * 4}}
    bad = {"prompt": "1+4?", "response": "A:3", "is_correct": False, "answer": "3", "meta": {"uid": 1}}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    recs = [GenerationRecord(**{**x, "meta": dict(x["meta"])}) for x in (good, bad)]
    ss = make_sample_set("test", recs, tokenizer)
    assert len(file_logprobs(path, make_sample_set("test", recs[:1], tokenizer), 2)[0].sampled) == 4
    with pytest.raises(ValueError, match=rf"{path}:3: meta has no 'token_logprobs'"):
        file_logprobs(path, ss, 2)
    # the other methods still run on these samples
    s = sequential_spend(ss, [np.array([0, 1])], "esc", 2)
    assert s.started.all()


def test_probe_learns_a_separable_outcome_and_reads_every_prefix(tiny_policy_dir, tokenizer):
    rng = np.random.default_rng(0)
    states = [rng.normal(size=(6, 3)) + (2.0 if i % 2 == 0 else -2.0) for i in range(20)]
    labels = np.array([1, 0] * 10)
    probe = train_probe(states, labels, positions=4, seed=0, c=1.0)
    v = probe_values(probe, [np.full((2, 3), 2.0), np.full((3, 3), -2.0)], 4)
    assert v[0, :2].min() > 0.9 and v[1, :3].max() < 0.1 and np.isnan(v[0, 2:]).all()
    with pytest.raises(ValueError, match="right and wrong"):
        train_probe(states, np.ones(20), 4, 0, 1.0)
    policy = LlamaForCausalLM.from_pretrained(tiny_policy_dir)
    hs = policy_states(policy, tokenizer, ["1+4?", "2+5?"], ["A:5", "A:70"], [True, False])
    assert [h.shape for h in hs] == [(4, 32), (4, 32)]  # 3 tokens + EOS; 4 tokens without one
    with torch.no_grad():  # row t is the last layer's state after reading response token t
        full = policy(torch.tensor([[1] + tokenizer("1+4?A:5", add_special_tokens=False)["input_ids"] + [2]]),
                      output_hidden_states=True).hidden_states[-1][0, 5:]
    np.testing.assert_allclose(hs[0], full.numpy(), atol=1e-5)
    # read a batch at a time, the values are the same as from all states at once
    probe = train_probe(hs, np.array([1, 0]), positions=4, seed=0, c=1.0)
    one = sample_values(policy, tokenizer, probe, ["1+4?", "2+5?"], ["A:5", "A:70"], [True, False], 5, batch_size=1)
    np.testing.assert_allclose(one, probe_values(probe, hs, 5), atol=1e-5)
    assert np.isnan(one[:, 4]).all()
    pairs = [PreferencePair("1+4?", "A:5", "A:70")]
    states, labels = training_states(policy, tokenizer, pairs, positions=2, seed=0, batch_size=1)
    assert labels.tolist() == [1, 0] and [h.shape for h in states] == [(2, 32), (2, 32)]
    assert any(np.allclose(states[0][0], row, atol=1e-5) for row in hs[0])  # rows of the solution's own states


def test_policy_confidences_read_a_batch_at_a_time(tiny_policy_dir, tokenizer, three_samples):
    policy = LlamaForCausalLM.from_pretrained(tiny_policy_dir)
    recs = three_samples.records
    whole = policy_logprobs(policy, tokenizer, [r.prompt for r in recs], [r.response for r in recs], k=3)
    got = policy_confidences(policy, tokenizer, three_samples, k=3, batch_size=2)
    assert [len(c) for c in got] == three_samples.length.tolist()
    for c, lp in zip(got, whole):
        np.testing.assert_allclose(c, -lp.top.mean(1), atol=1e-5)


def test_frontier_params_are_checked():
    with pytest.raises(ParamsError, match="keep_percents"):
        from_dict(FilteringParams, {"frontier": {"keep_percents": [0.0]}}).validate()
    with pytest.raises(ParamsError, match="adaptive_thresholds"):
        from_dict(FilteringParams, {"frontier": {"adaptive_thresholds": [1.0]}}).validate()
    with pytest.raises(ParamsError, match="order_repeats"):
        from_dict(FilteringParams, {"frontier": {"order_repeats": -1}}).validate()
    assert from_dict(FilteringParams, {"frontier": {"scorer_params": 1000}}).frontier.scorer_params == 1000


def two_question_frontier(tokenizer, frontier: dict, rm_seeds: list[int]):
    """Two questions of four samples with flat scores: on validation every sample of a question agrees (stopping
    early loses nothing), on test they disagree. Returns (params, samples, inputs, frontier result)."""
    from gcrm_kit.filtering import SampleScores, evaluate_offline
    from gcrm_kit.filtering.frontier import evaluate_frontier

    def question(prompt, answers, right):
        return [rec(prompt, f"A:{a}{'x' * k}", a == right, str(a)) for k, a in enumerate(answers)]
    val = make_sample_set("validation", question("1+4?", [5] * 4, 5) + question("2+5?", [7] * 4, 7), tokenizer)
    test = make_sample_set("test", question("1+4?", [5, 3, 5, 3], 5) + question("2+5?", [7, 1, 7, 7], 7),
                           tokenizer)
    samples = {"validation": val, "test": test}

    def sc(ss):
        x = np.where(np.arange(ss.length.max())[None, :] < ss.length[:, None], 0.5, np.nan).astype(np.float32)
        return SampleScores(x, x, np.zeros(len(ss.length), dtype=np.float32))
    scores = {(w, si): {s: sc(ss) for s, ss in samples.items()} for w in ("goal", "baseline") for si in rm_seeds}
    p = from_dict(FilteringParams, {"threshold_quantiles": [0.0, 1.0], "random_repeats": 1, "frontier": {
        "rejection_points": [1], "keep_fractions": [1.0], **frontier}})
    off = evaluate_offline(p, samples, scores, rm_seeds)
    inp = FrontierInputs({s: prompt_tokens(ss.records, tokenizer) for s, ss in samples.items()}, 1.0,
                         {"goal": 1.0, "baseline": 1.0}, tokenizer)
    return p, samples, inp, evaluate_frontier(p, inp, samples, scores, off, [], rm_seeds)


def test_frontier_reports_on_test_the_setting_chosen_on_validation(tokenizer):
    _, _, _, fr = two_question_frontier(tokenizer, {"esc_windows": [4, 2], "adaptive_thresholds": [0.95, 0.75]}, [0])
    chosen = {r["method"]: r for r in fr.chosen}
    assert chosen["esc"]["setting"] == "window 2" and chosen["adaptive_consistency"]["setting"] == "threshold 0.75"
    for m in ("esc", "adaptive_consistency"):
        r = chosen[m]
        at = next(x for x in fr.points if x["method"] == m and x["set"] == "test" and x["setting"] == r["setting"])
        assert r["accuracy"] == at["accuracy"] and r["share_compute_saved"] == at["share_compute_saved"]
        assert r["validation_accuracy"] == 1.0 and r["validation_share_compute_saved"] > 0
    # test: question 1+4 is a 2-2 tie (credit 1/2), 2+5 is won by 7
    assert chosen["majority"]["share_compute_saved"] == 0.0 and chosen["majority"]["accuracy"] == 0.75
    # adaptive consistency at 0.75 answers each test question with its first drawn sample alone
    assert chosen["adaptive_consistency"]["share_started"] == pytest.approx(2 / 8)
    assert set(fr.target["methods_meeting_target"]) <= set(chosen)


def test_sequential_methods_draw_in_rounds_until_their_count():
    from gcrm_kit.filtering.sequential_online import draw_rounds

    orders = [np.array([2, 0, 1, 3]), np.array([5, 4, 6, 7])]
    # ESC with windows of 2: question 0 stops after 2 samples, question 1 after 4
    assert draw_rounds([2, 4], orders, 2) == [[2, 0, 5, 4], [6, 7]]
    # one at a time (adaptive consistency): question 0 stops after 1, question 1 after 3
    assert draw_rounds([1, 3], orders, 1) == [[2, 5], [4], [6]]
    assert draw_rounds([0, 0], orders, 1) == []


def test_deepconf_online_consensus_stops_drawing_once_the_leader_holds_tau(tokenizer):
    # one question, five traces in draw order: answers 5, 5, 3, 5, 5, every trace confident (no trace is stopped)
    recs = [rec("1+4?", r, a == "5", a) for r, a in
            [("A:5", "5"), ("A:5", "5"), ("A:3", "3"), ("A:5", "5"), ("A:5", "5")]]
    ss = make_sample_set("t", recs, tokenizer)
    confs = [np.full(n, w) for n, w in zip(ss.length, [2.0, 2.0, 3.0, 2.0, 2.0])]
    order = [np.arange(5)]
    never = online_spend(ss, confs, order, 100, warmup=2, window=2)
    assert never.started.all() and never.kept.all()
    # after the warm-up 5 holds all the weight (4 of 4): tau 0.95 stops there, the other three are never drawn
    s = online_spend(ss, confs, order, 100, warmup=2, window=2, consensus=0.95)
    assert s.started.tolist() == [True, True, False, False, False] and s.generated.tolist()[2:] == [0, 0, 0]
    assert not s.kept[2:].any()
    # one warm-up trace holds all the weight: any tau is met at once, whatever its answer
    s = online_spend(ss, confs, [np.array([2, 0, 1, 3, 4])], 100, warmup=1, window=2, consensus=0.5)
    assert s.started.tolist() == [False, False, True, False, False]
    # warm-up 5, 5 then 3: 4 of 7 = 0.57 < 0.6 after the 3, so the fourth trace is drawn; 6 of 9 = 0.67 stops
    s = online_spend(ss, confs, [np.array([0, 1, 2, 3, 4])], 100, warmup=3, window=2, consensus=0.6)
    assert s.started.tolist() == [True, True, True, True, False]
    # a trace stopped by its confidence does not vote, so it cannot make the consensus
    low = [np.full(n, w) for n, w in zip(ss.length, [2.0, 2.0, 0.5, 0.5, 2.0])]
    s = online_spend(ss, low, [np.array([0, 2, 3, 1, 4])], 50, warmup=2, window=2, consensus=0.95)
    # warm-up 5 (2) and 3 (0.5): 0.8 < 0.95; trace 3 falls below the median 1.25 and stops; trace 1 votes 5: 4 / 4.5
    # = 0.89; trace 4 votes 5: 6 / 6.5 = 0.92; every trace drawn
    assert s.started.all() and s.kept.tolist() == [True, True, True, False, True]


def test_deepconf_consensus_thresholds_are_checked():
    with pytest.raises(ParamsError, match="consensus_thresholds"):
        from_dict(FilteringParams, {"frontier": {"consensus_thresholds": [1.5]}}).validate()


def test_order_spread_replays_the_chosen_setting_over_fresh_draw_orders(tokenizer):
    from gcrm_kit.filtering import order_spread, order_spread_table, vote_credit
    from gcrm_kit.filtering.consistency import draw_orders

    p, samples, inp, fr = two_question_frontier(
        tokenizer, {"esc_windows": [2], "adaptive_thresholds": [0.75], "order_repeats": 400}, [0, 1])
    test = samples["test"]
    rows = {r["method"]: r for r in order_spread(p, inp, samples, fr)}
    assert set(rows) == {"esc", "adaptive_consistency"}  # no confidences: no DeepConf
    esc, ada = rows["esc"], rows["adaptive_consistency"]
    assert esc["rm_seeds"] == [0, 1] and esc["repeats"] == 400 and esc["setting"] == "window 2"
    # the mean is over orders of its own, recomputed here
    orders = [draw_orders(test, [p.seed, 11, j]) for j in range(400)]
    accs = [np.mean(vote_credit(test, sequential_spend(test, o, "esc", 2).kept)) for o in orders]
    assert esc["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert esc["accuracy_se"] == pytest.approx(np.std(accs, ddof=1) / 20)
    assert esc["accuracy_unfiltered"] == 0.75 and esc["accuracy_drop"] == pytest.approx(0.75 - np.mean(accs))
    # adaptive consistency at 0.75 votes with each question's first drawn sample alone: in expectation over
    # orders (1/2 + 3/4) / 2 = 0.625, and exactly the vote of the first K = 1 samples, order by order
    assert ada["samples_per_question"] == 1.0 and ada["prefix_k"] == 1
    assert ada["prefix_accuracy_mean"] == ada["accuracy_mean"] and ada["prefix_accuracy_sd"] == ada["accuracy_sd"]
    assert abs(ada["accuracy_mean"] - 0.625) < 4 * ada["accuracy_se"] and ada["accuracy_sd"] > 0.2
    assert ada["within_drop"] is False and ada["share_compute_saved_mean"] > 0.5 and ada["meets_target"] is False
    # meeting the target needs both the saving and the accuracy, on the means over orders
    p.frontier.target_compute_saved, p.frontier.max_accuracy_drop = 0.0, 1.0
    assert all(r["meets_target"] for r in order_spread(p, inp, samples, fr))
    p.frontier.target_compute_saved = 0.99
    assert not any(r["meets_target"] for r in order_spread(p, inp, samples, fr))
    p.frontier.target_compute_saved, p.frontier.max_accuracy_drop = 0.0, 0.0
    assert [r["meets_target"] for r in order_spread(p, inp, samples, fr)] == [
        r["accuracy_drop"] <= 1e-12 for r in order_spread(p, inp, samples, fr)]
    assert order_spread_table(list(rows.values())).loc[("esc", "window 2"), "rm seeds"] == "0, 1"
    p.frontier.order_repeats = 1  # one order: no spread to measure
    one = order_spread(p, inp, samples, fr)
    assert all(r["accuracy_se"] is None and r["accuracy_sd"] == 0.0 for r in one)
    assert order_spread_table(one)["standard error"].eq("").all()
    p.frontier.order_repeats = 0
    assert order_spread(p, inp, samples, fr) == []


def test_deepconf_online_in_flight_cuts_the_traces_still_running_at_the_consensus(tokenizer):
    # one question: warm-up 5 and 3 (no consensus), then 5, 5, 5, 5 of 4, 6, 2 and 8 tokens (lengths + EOS)
    recs = [rec("1+4?", r, a == "5", a) for r, a in
            [("A:5", "5"), ("A:3", "3"), ("A:5x", "5"), ("A:5xxx", "5"), ("5", "5"), ("A:5xxxxx", "5")]]
    ss = make_sample_set("t", recs, tokenizer)
    assert ss.length.tolist()[2:] == [5, 7, 2, 9]
    confs = [np.full(n, 2.0) for n in ss.length]  # every trace equally confident: none is stopped by confidence
    order = [np.arange(6)]
    # one at a time: after 5, 5 the leader holds 4 of 5 = 0.8 >= 0.75, so the last two are never drawn
    one = online_spend(ss, confs, order, 100, warmup=2, window=2, consensus=0.75)
    assert one.started.tolist() == [True] * 4 + [False] * 2 and one.generated.tolist()[2:] == [5, 7, 0, 0]
    # three in flight: traces 2, 3, 4 start together; 4 ends after 2 tokens (5 holds 2 of 3) and 5 starts; 2 ends
    # after 5 (3 of 4 = 0.75: consensus), so 3 (started at 0) and 5 (started at 2) are cut after 5 and 3 tokens
    three = online_spend(ss, confs, order, 100, warmup=2, window=2, consensus=0.75, in_flight=3)
    assert three.started.all() and three.generated.tolist()[2:] == [5, 5, 2, 3]
    assert three.kept.tolist() == [True, True, True, False, True, False]
    # no consensus stop: every trace drawn in full, whatever runs in parallel
    assert (online_spend(ss, confs, order, 100, 2, 2, in_flight=3).generated == ss.length).all()
    with pytest.raises(ValueError, match="in_flight"):
        online_spend(ss, confs, order, 100, 2, 2, in_flight=0)
