"""Offline filtering: the pruning rule, token accounting, voting with its tie and all-pruned options, the threshold
grid and its choice, random pruning at a matched budget, the statistics, and per-sample sampling noise."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gcrm_kit import evaluation
from gcrm_kit.data import GenerationRecord
from gcrm_kit.filtering import (
    PerSampleGumbel,
    best_of_n_credit,
    build_samples,
    choose_threshold,
    ends_with_eos,
    evaluate_pruning,
    first_below,
    hashed_uniform,
    load_setup,
    make_sample_set,
    min_after,
    prune_positions,
    pruning_statistics,
    random_matched,
    split_generations,
    summarise,
    threshold_grid,
    toy_questions,
    vote_credit,
    weighted_credit,
)
from gcrm_kit.filtering.online import evaluate_online
from gcrm_kit.params import FilteringParams, ParamsError, RewardModelSpec, from_dict


def rec(prompt, response, correct, answer):
    return GenerationRecord(prompt, response, correct, answer)


@pytest.fixture
def two_questions(tokenizer):
    """q0: answers 5 (right) x2, 3 x2 -> a 2-way tie; q1: 7 (right) x1, 1 x2, one unparsed answer."""
    recs = [rec("1+4?", "1+4=5;A:5", True, "5"), rec("1+4?", "1+4=3;A:3", False, "3"),
            rec("1+4?", "1+4=5;A:5", True, "5"), rec("1+4?", "1+4=3;A:3", False, "3"),
            rec("2+5?", "2+5=7;A:7", True, "7"), rec("2+5?", "2+5=1;A:1", False, "1"),
            rec("2+5?", "2+5=1;A:1", False, "1"), rec("2+5?", "2+5=", False, None)]
    return make_sample_set("t", recs, tokenizer)


def test_sample_set_codes_answers_and_lengths(two_questions):
    ss = two_questions
    assert ss.n_questions == 2 and list(ss.question) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(ss.answer) == [0, 1, 0, 1, 0, 1, 1, -1]
    assert ss.group_correct[0].tolist()[:2] == [True, False] and ss.group_correct[1].tolist()[:2] == [True, False]
    # character tokenizer: response characters + EOS
    assert ss.length[0] == len("1+4=5;A:5") + 1 and ss.length[7] == len("2+5=") + 1


def test_first_below_skips_k_tokens_and_respects_offset():
    s = torch.tensor([[-1.0, -1.0, 0.5, -0.2, -0.3], [0.5, 0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5, -1.0]])
    valid = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert first_below(s, valid, 0.0, skip=2).tolist() == [3, -1, -1]  # early lows ignored; invalid ignored
    assert first_below(s, valid, 0.0, skip=0).tolist() == [0, -1, -1]
    # a chunk that starts at response token 10: positions are 10..14, all past skip
    assert first_below(s, valid, 0.0, skip=5, offset=10).tolist() == [10, -1, -1]
    assert first_below(s, valid, 0.0, skip=12, offset=10).tolist() == [13, -1, -1]


def test_prune_positions_ignores_padding():
    scores = np.array([[0.5, 0.5, -1.0, np.nan], [0.5, np.nan, np.nan, np.nan]])
    assert prune_positions(scores, 0.0, 1).tolist() == [2, -1]
    assert prune_positions(scores, 0.0, 3).tolist() == [-1, -1]


def test_tie_break_options(two_questions):
    ss = two_questions
    kept = np.ones(8, dtype=bool)
    # q0 is a 2-way tie between the right and a wrong answer; q1's vote is wrong (1 beats 7, None not counted)
    assert vote_credit(ss, kept, "random").tolist() == [0.5, 0.0]
    assert vote_credit(ss, kept, "loss").tolist() == [0.0, 0.0]
    assert vote_credit(ss, kept, "favour_correct").tolist() == [1.0, 0.0]
    # pruning one wrong sample in each question decides both votes
    kept2 = kept.copy()
    kept2[[1, 5]] = False
    assert vote_credit(ss, kept2, "random").tolist() == [1.0, 0.5]
    # nothing kept (or only unanswered samples): no answer, no credit
    none = np.zeros(8, dtype=bool)
    none[7] = True
    assert vote_credit(ss, none, "favour_correct").tolist() == [0.0, 0.0]


def test_weighted_vote_and_best_of_n(two_questions):
    ss = two_questions
    reward = np.array([3.0, -3.0, 0.0, 0.0, 4.0, -1.0, -1.0, 0.0])
    # sigmoid weights: q0 5 -> 0.95 + 0.5, 3 -> 0.05 + 0.5; q1 7 -> 0.98, 1 -> 2 * 0.27
    assert weighted_credit(ss, reward, "random").tolist() == [1.0, 1.0]
    assert best_of_n_credit(ss, reward).tolist() == [1.0, 1.0]
    assert best_of_n_credit(ss, -reward).tolist() == [0.0, 0.0]


def test_token_accounting_and_all_pruned(two_questions):
    ss = two_questions
    L = ss.length
    prune = np.array([5, -1, -1, -1, 6, 6, 6, 3])  # q1: every sample pruned
    ev = evaluate_pruning(ss, prune, "random", "abstain")
    # pruned at token t: tokens 0..t were generated (t + 1), kept: all of them
    generated = 6 + L[1] + L[2] + L[3] + 7 + 7 + 7 + 4
    assert ev["tokens_generated"] == generated and ev["tokens_total"] == L.sum()
    assert math.isclose(ev["share_tokens_saved"], 1 - generated / L.sum())
    assert ev["share_pruned"] == 5 / 8 and ev["questions_all_pruned"] == 1
    # q0: kept 3 and 5 and 3 -> wrong; q1 abstains
    assert ev["credit"].tolist() == [0.0, 0.0]
    fb = evaluate_pruning(ss, prune, "random", "unfiltered")
    # the fallback votes over all of q1's samples, and all of them count as generated
    assert fb["credit"].tolist() == [0.0, 0.0]
    assert fb["tokens_generated"] == 6 + L[1] + L[2] + L[3] + L[4:].sum()
    nothing = evaluate_pruning(ss, np.full(8, -1), "random", "abstain")
    assert nothing["share_tokens_saved"] == 0.0 and nothing["accuracy"] == 0.25


def test_threshold_grid_prunes_the_requested_share():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 30))
    scores[:, 25:] = np.nan
    taus = threshold_grid(scores, 5, [0.0, 0.1, 0.5, 1.0])
    shares = [(prune_positions(scores, t, 5) >= 0).mean() for t in taus]
    assert shares == [0.0, 0.1, 0.5, 1.0]
    assert np.all(np.diff(taus) > 0)


def test_choose_threshold_takes_most_savings_at_kept_accuracy():
    sweep = [{"accuracy": 0.8, "share_tokens_saved": 0.0}, {"accuracy": 0.8, "share_tokens_saved": 0.2},
             {"accuracy": 0.79, "share_tokens_saved": 0.5}, {"accuracy": 0.6, "share_tokens_saved": 0.9}]
    assert choose_threshold(sweep, 0.8, 0.0) == 1
    assert choose_threshold(sweep, 0.8, 0.02) == 2
    assert choose_threshold(sweep, 0.95, 0.0) == 0  # nothing eligible: prune nothing


def test_random_matched_keeps_the_budget_per_question(two_questions):
    ss = two_questions
    ref = np.array([6, -1, -1, -1, 6, 6, -1, -1])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        r = random_matched(ss, ref, 2, rng)
        for q in range(ss.n_questions):
            m = ss.question == q
            assert (r[m] >= 0).sum() == (ref[m] >= 0).sum()
        assert np.all((r < 0) | ((r >= 2) & (r < ss.length)))
        seen.add(tuple(r >= 0))
    assert len(seen) > 1  # the decisions really move between samples


def test_pruning_statistics_match_scipy(two_questions):
    ss = two_questions
    prune = np.array([-1, 4, -1, 4, -1, 4, -1, -1])
    st = pruning_statistics(ss, prune)
    c = ss.correct.astype(float)
    kept = prune < 0
    assert st["correct_kept"] == c[kept].mean() and st["correct_all"] == c.mean()
    ref = stats.ttest_ind(c[kept], c[~kept], equal_var=False)  # disjoint groups: Welch's
    assert math.isclose(st["ttest_kept_vs_pruned"]["p"], ref.pvalue)


def test_split_generations_by_question(tokenizer):
    recs = [rec(f"{q}+1?", "x", bool(j % 2), str(j)) for q in range(10) for j in range(3)]
    p = from_dict(FilteringParams, {"generations": "x.jsonl", "n_validation_questions": 4, "n_test_questions": 0})
    out = split_generations(p, recs)
    val = {r.prompt for r in out["validation"]}
    test = {r.prompt for r in out["test"]}
    assert len(val) == 4 and len(test) == 6 and not val & test
    assert len(out["validation"]) == 12


def test_filtering_params_validation():
    with pytest.raises(ParamsError, match="split"):
        from_dict(FilteringParams, {"split": ""})
    # any other name may be a real-data run's evaluation set: a toy run refuses it when it draws its questions
    with pytest.raises(ValueError, match="'nope' is not a toy-world split; known: .*'id'"):
        toy_questions(from_dict(FilteringParams, {"split": "nope"}), set())
    with pytest.raises(ParamsError, match="threshold_quantiles"):
        from_dict(FilteringParams, {"threshold_quantiles": [1.5]})
    with pytest.raises(ParamsError, match="tie_break"):
        from_dict(FilteringParams, {"tie_break": "win"})
    with pytest.raises(ParamsError, match="unknown key"):
        from_dict(FilteringParams, {"online": {"chunk": 4}})
    with pytest.raises(ParamsError, match="online.loop: expected 'cached' or 'chunked', got 'fast'"):
        from_dict(FilteringParams, {"online": {"loop": "fast"}})
    with pytest.raises(ParamsError, match="online.score_at needs online.loop 'cached'"):
        from_dict(FilteringParams, {"online": {"loop": "chunked", "score_at": ";"}})
    with pytest.raises(ParamsError, match="device: expected one of auto, cpu, cuda or cuda:<index>, got 'gpu'"):
        from_dict(FilteringParams, {"device": "gpu"})
    assert from_dict(FilteringParams, {"device": "cuda:1"}).device == "cuda:1"
    # a misspelt online method is named before anything is loaded (setup and samples are never read)
    with pytest.raises(ParamsError, match=r"online.methods: unknown pruning method\(s\) \['q_gaol'\]"):
        evaluate_online(from_dict(FilteringParams, {"online": {"methods": ["q_gaol", "q_goal"]}}), None,
                        {"test": None}, None)
    assert FilteringParams().device == "auto"


def test_hashed_uniform_is_a_function_of_sample_step_and_token():
    u = hashed_uniform(7, torch.tensor([0, 1, 2, 1]), 3, 50)
    assert u.shape == (4, 50) and (u > 0).all() and (u < 1).all()
    assert torch.equal(u[1], u[3])  # same sample, same step: same noise whatever its row
    assert not torch.equal(u[0], u[1])
    assert not torch.equal(u, hashed_uniform(7, torch.tensor([0, 1, 2, 1]), 4, 50))
    assert not torch.equal(u, hashed_uniform(8, torch.tensor([0, 1, 2, 1]), 3, 50))
    big = hashed_uniform(0, torch.arange(4000), 0, 50).flatten().numpy()
    assert stats.kstest(big, "uniform").pvalue > 1e-3


def test_per_sample_gumbel_samples_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -30.0])
    T = 0.8
    proc = PerSampleGumbel(seed=3, temperature=T)
    n = 20000
    proc.set_rows(torch.arange(n), prompt_len=0)
    picks = proc(torch.zeros((n, 0), dtype=torch.long), logits.expand(n, -1).clone()).argmax(-1)
    freq = torch.bincount(picks, minlength=5).numpy()
    prob = torch.softmax(logits / T, -1).double().numpy()[:4]
    chi2 = stats.chisquare(freq[:4], prob / prob.sum() * freq[:4].sum())
    assert chi2.pvalue > 1e-3 and freq[4] == 0


def test_within_question_auroc_compares_samples_of_one_question(two_questions):
    ss = two_questions  # correct: q0 samples 0, 2; q1 sample 4
    x = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    # q0: both correct above both wrong (4 wins of 4); q1: the correct one below all three wrong (0 of 3)
    assert evaluation.within_group_auroc(x, ss.correct, ss.question) == 4 / 7
    assert math.isnan(evaluation.within_group_auroc(x, np.ones(8, dtype=bool), ss.question))  # no pair
    scores = np.array([[0.0, 5.0, 1.0, np.nan], [9.0, 9.0, 9.0, 9.0]])
    assert min_after(scores, 1).tolist() == [1.0, 9.0] and min_after(scores, 3).tolist() == [np.inf, 9.0]


def test_unfinished_samples_count_no_eos(tokenizer):
    """A sample cut at the token limit never generated an EOS: its length (and the tokens pruning can save or cut
    at) are its response tokens alone; finished samples and records without `finished` add the EOS."""
    recs = [GenerationRecord("1+4?", "1+4=5;A:5", True, "5", {"finished": True}),
            GenerationRecord("1+4?", "1+4=5;1+4=5;1+", False, None, {"finished": False}),
            GenerationRecord("1+4?", "1+4=3;A:3", False, "3")]
    ss = make_sample_set("t", recs, tokenizer)
    assert ss.length.tolist() == [len("1+4=5;A:5") + 1, len("1+4=5;1+4=5;1+"), len("1+4=3;A:3") + 1]
    assert [ends_with_eos(r) for r in recs] == [True, False, True]
    # the last position the offline rule can prune an unfinished sample at is its last real token
    scores = np.full((3, ss.length.max()), np.nan)
    for i, n in enumerate(ss.length):
        scores[i, :n] = 1.0
    scores[1, ss.length[1] - 1] = -1.0
    assert prune_positions(scores, 0.0, 2).tolist() == [-1, ss.length[1] - 1, -1]
    with pytest.raises(ValueError, match="'finished' must be true or false"):
        make_sample_set("t", [GenerationRecord("1?", "A:1", True, "1", {"finished": "no"})], tokenizer)


def test_missing_answers_are_an_error_not_a_zero_vote(tokenizer):
    no_answers = [rec("1+4?", "1+4=5;A:5", False, None), rec("1+4?", "1+4=3;A:3", False, None)]
    with pytest.raises(ValueError, match=r"gen\.jsonl: none of the 2 test records has an answer"):
        make_sample_set("test", no_answers, tokenizer, "gen.jsonl")
    correct_without = [rec("1+4?", "1+4=5;A:5", True, None), rec("1+4?", "1+4=3;A:3", False, "3")]
    with pytest.raises(ValueError, match="record uid 0 .* is correct but has no answer"):
        make_sample_set("test", correct_without, tokenizer)
    # an unparsed answer among answered samples is a sample without a vote, as before
    ok = make_sample_set("test", [rec("1+4?", "1+4=", False, None), rec("1+4?", "1+4=5;A:5", True, "5")], tokenizer)
    assert ok.answer.tolist() == [-1, 0]


@pytest.fixture
def fake_run_and_setup(tmp_path, tokenizer):
    from types import SimpleNamespace

    tok_dir = tmp_path / "rm"
    tokenizer.save_pretrained(tok_dir)

    def path(*parts):
        p = tmp_path.joinpath("run", *parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    return SimpleNamespace(path=path, cache_root=tmp_path / "cache"), SimpleNamespace(model_dirs={"goal": [tok_dir]})


def _write(path, lines):
    import json

    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_generations_file_without_answers_names_the_file_and_line(tmp_path, fake_run_and_setup):
    from gcrm_kit.data import DataError

    run, setup = fake_run_and_setup
    lines = [{"question": f"{q}+1?", "solution": f"{q}+1={j};A:{j}", "is_correct": j == q + 1}
             for q in range(4) for j in range(3)]
    path = _write(tmp_path / "gen.jsonl", lines)
    p = from_dict(FilteringParams, {"generations": str(path), "n_validation_questions": 2, "n_test_questions": 0})
    with pytest.raises(DataError, match=r"gen\.jsonl:1: missing key 'answer'"):
        build_samples(p, run, setup)
    # the schema (question, solution, answer, is_correct) reads as prompt/response/answer/is_correct
    for x in lines:
        x["answer"] = x["solution"][-1]
    lines[0]["answer"] = None  # no answer extracted: no vote (an incorrect sample)
    _write(path, lines)
    out = build_samples(p, run, setup)
    assert sum(len(ss.records) for ss in out.values()) == 12
    assert sum(int((ss.answer < 0).sum()) for ss in out.values()) == 1
    assert all(ss.length[0] == len(ss.records[0].response) + 1 for ss in out.values())  # finished by default


def test_reward_models_are_chosen_by_role_or_name(tmp_path, fake_rm_run):
    """The defaults goal_conditioned / baseline are roles: a run naming its goal-conditioned model `contrastive`
    (params/01_rm_training/grm_comparison.yaml) works as is; two params meaning one model are an error."""
    run = fake_rm_run(tmp_path, [RewardModelSpec(name="baseline"),
                                 RewardModelSpec(name="contrastive", contrastive_weight=0.5)], "grm")
    setup = load_setup(from_dict(FilteringParams, {"rm_run": str(run)}))
    assert setup.names == {"goal": "contrastive", "baseline": "baseline"} and setup.rm_seeds == [0, 1]
    assert [d.name for d in setup.model_dirs["goal"]] == ["contrastive_seed0", "contrastive_seed1"]
    assert setup.objectives()["goal"] == {"name": "contrastive", "role": "goal_conditioned",
                                          "contrastive_weight": 0.5, "grm_weight": 0.0}
    named = load_setup(from_dict(FilteringParams, {"rm_run": str(run), "goal_rm": "baseline",
                                                   "baseline_rm": "contrastive"}))
    assert named.names == {"goal": "baseline", "baseline": "contrastive"}
    same = from_dict(FilteringParams, {"rm_run": str(run), "goal_rm": "contrastive", "baseline_rm": "goal_conditioned"})
    with pytest.raises(ValueError, match="goal_rm='contrastive' and baseline_rm='goal_conditioned' both mean reward "
                                         "model 'contrastive' of .*run; name two different models"):
        load_setup(same)
    bare = fake_rm_run(tmp_path / "b", [RewardModelSpec(name="baseline")], "grm")
    with pytest.raises(ValueError, match="no reward model named or of role 'goal_conditioned'"):
        load_setup(from_dict(FilteringParams, {"rm_run": str(bare)}))


def test_summary_over_rm_seeds_per_method():
    rows = [{"method": m, "rm_seed": s, "accuracy": a, "accuracy_unfiltered": 0.5, "share_pruned": sp,
             "share_tokens_saved": sp / 2}
            for m, s, a, sp in [("q_goal", 0, 0.6, 0.2), ("majority", 0, 0.5, 0.0), ("q_goal", 1, 0.8, 0.4),
                                ("majority", 1, 0.5, 0.0)]]
    online = [{"method": "q_goal", "rm_seed": s, "share_tokens_saved": t, "share_seconds_saved": -t,
               "share_seconds_saved_vs_generate_all": 0.0, "accuracy": 0.7, "seconds": 2.0}
              for s, t in [(0, 0.1), (1, 0.3)]] + [{"method": "none", "rm_seed": None, "seconds": 1.0}]
    out = summarise(rows, online)
    assert [e["method"] for e in out] == ["majority", "q_goal"]  # METHOD_ORDER, not the rows' order
    q = out[1]
    assert q["n_seeds"] == 2 and q["accuracy"]["mean"] == pytest.approx(0.7)
    assert q["accuracy"]["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert q["online_share_tokens_saved"]["mean"] == pytest.approx(0.2) and q["online_seconds"]["std"] == 0.0
    assert list(q)[:6] == ["method", "n_seeds", "accuracy", "accuracy_unfiltered", "share_pruned", "share_tokens_saved"]
    assert not any(k.startswith("online_") for k in out[0])  # majority has no online run


def test_the_papers_kept_vs_all_test_is_students_over_per_question_shares():
    """The released metrics.py runs scipy's ttest_ind (equal variances) on per-question shares correct among the
    kept samples and among all; a question with every sample pruned counts with all of them."""
    from scipy import stats

    from gcrm_kit.filtering.pruning import pruning_statistics

    class Set:  # the two arrays pruning_statistics reads
        correct = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
        question = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])

    prune_at = np.array([-1, 3, -1, -1, 2, -1, 4, 5, 6])  # question 2: every sample pruned
    kept_share = [1.0, 0.5, 2 / 3]
    all_share = [2 / 3, 1 / 3, 2 / 3]
    want = stats.ttest_ind(kept_share, all_share)
    got = pruning_statistics(Set(), prune_at)["ttest_kept_vs_all"]
    assert np.isclose(got["p"], want.pvalue) and np.isclose(got["t"], want.statistic)
