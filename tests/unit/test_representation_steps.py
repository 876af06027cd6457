"""Notebook 02's per-step readers: where each step is read, the first wrong step of each solution, and ProcessBench's
scores of a reader with its threshold chosen on validation solutions and reported on test ones, over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from gcrm_kit.data import GenerationRecord
from gcrm_kit.qvalues import TokenValues
from gcrm_kit.representation import steps as st


def test_step_columns_are_the_columns_after_each_separator_and_the_eos(tokenizer):
    recs = [GenerationRecord("3+7*2?", "7+3=0;0*2=0;A:0", False), GenerationRecord("1+1?", "1+1=2;A:2", True)]
    cols = st.step_columns(tokenizer, recs, ";")
    # column k is the state after reading k response tokens: ";" is token 5 (column 6) and 11 (column 12)
    assert [c.tolist() for c in cols] == [[6, 12, 16], [6, 10]]
    assert [c[-1] for c in cols] == [len(r.response) + 1 for r in recs]  # the EOS column = response tokens + EOS


def test_at_steps_reads_a_scorer_at_the_columns():
    tv = TokenValues({"q": np.arange(12, dtype=float).reshape(2, 6)}, np.zeros((2, 6)), np.array([5, 4]),
                     [[]] * 2)
    got = st.at_steps(tv, "q", [np.array([2, 5]), np.array([1, 4])])
    assert [g.tolist() for g in got] == [[2.0, 5.0], [7.0, 10.0]]


def test_step_labels_from_the_verifier_or_a_stepwise_label():
    recs = [GenerationRecord("3+7*2?", "7+3=0;0*2=0;A:0", False, None, {"first_error_char": 6}),
            GenerationRecord("1+1?", "1+1=2;A:2", True, None, {"first_error_char": None}),
            GenerationRecord("p", "a\n\nb", False, None, {"label": 1})]
    assert st.step_labels(recs[:2], ";").tolist() == [1, -1]
    assert st.step_labels(recs[2:], "\n\n").tolist() == [1]
    with pytest.raises(ValueError, match="record 0: meta has neither"):
        st.step_labels([GenerationRecord("p", "a;b", True)], ";")
    with pytest.raises(ValueError, match="outside its 2 steps"):
        st.step_labels([GenerationRecord("p", "a;b", False, None, {"label": 2})], ";")


def _solutions(n, seed):
    """n solutions of 3 steps: labels cycle -1, 0, 1, 2; a perfect reader scores right steps 0.9 and the first
    wrong step and after 0.1."""
    labels = np.array([(-1, 0, 1, 2)[i % 4] for i in range(n)])
    perfect = [np.array([0.1 if 0 <= y <= k else 0.9 for k in range(3)]) for y in labels]
    rng = np.random.default_rng(seed)
    noisy = [s + rng.normal(0, 0.5, 3) for s in perfect]
    return labels, perfect, noisy


def test_a_perfect_reader_scores_f1_one_and_a_constant_one_zero():
    labels, perfect, _ = _solutions(40, 0)
    val, test = st.validation_split(40, 0.5, 0)
    assert len(val) == 20 and not set(val) & set(test) and sorted([*val, *test]) == list(range(40))
    good = st.score_reader([perfect, perfect], labels, val, test)
    assert good["f1"] == {"mean": 1.0, "std": 0.0}
    assert 0.1 < good["per_seed"][0]["threshold"] < 0.9
    flat = st.score_reader([[np.ones(3)] * 40], labels, val, test)
    assert flat["f1"]["mean"] == 0.0 and flat["acc_correct"]["mean"] == 1.0  # calls every solution right


def test_seeds_give_mean_and_std_and_the_threshold_comes_from_validation_only():
    labels, perfect, noisy = _solutions(80, 1)
    val, test = st.validation_split(80, 0.5, 3)
    r = st.score_reader([perfect, noisy], labels, val, test)
    f1s = [s["f1"] for s in r["per_seed"]]
    assert r["f1"]["mean"] == pytest.approx(np.mean(f1s)) and r["f1"]["std"] == pytest.approx(np.std(f1s, ddof=1))
    # scrambling the test solutions' scores does not move the threshold
    scrambled = [s if i in set(val) else s[::-1] * 0 for i, s in enumerate(noisy)]
    assert st.score_reader([scrambled], labels, val, test)["per_seed"][0]["threshold"] == \
        r["per_seed"][1]["threshold"]


def test_a_validation_set_without_correct_solutions_gives_nan_with_the_reason():
    labels = np.array([0, 1, -1, -1])
    scores = [np.array([0.1, 0.5])] * 4
    r = st.score_reader([scores], labels, np.array([0, 1]), np.array([2, 3]))
    assert r["f1"]["mean"] != r["f1"]["mean"] and "erroneous and correct" in r["per_seed"][0]["why"]


def test_processbench_readers_keep_the_localisation_beside(tmp_path):
    labels, perfect, noisy = _solutions(40, 2)
    loc = {"rm Q (correct)": {"hit_rate": 0.3, "hit_rate_std": 0.1, "chance": 0.2, "control_hit_rate": 0.1,
                              "lift": 1.5}}
    a = st.processbench_readers({"rm Q (correct)": [noisy], "policy": [perfect]}, {"rm Q (correct)": "q",
                                                                                  "policy": "policy"},
                                labels, 0.5, 0, loc)
    d = a.data
    assert d["n_validation"] + d["n_test"] == 40 and d["n_test_erroneous"] + d["n_test_correct"] == d["n_test"]
    assert d["readers"]["policy"]["f1"]["mean"] == 1.0 and "localisation" not in d["readers"]["policy"]
    assert d["readers"]["rm Q (correct)"]["localisation"] == {"hit_rate": 0.3, "hit_rate_std": 0.1, "chance": 0.2,
                                                               "control_hit_rate": 0.1}
    table = st.processbench_table(d)
    assert list(table.index) == ["rm Q (correct)", "policy"] and table.loc["policy", "F1"] == "1.000 ± 0.000"
    assert a.figure is not None


def test_policy_step_confidence_is_the_mean_logprob_of_each_steps_tokens(tiny_policy_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from gcrm_kit.confidence import policy_logprobs

    recs = [GenerationRecord("3+7*2?", "7+3=0;0*2=0;A:0", False), GenerationRecord("1+1?", "1+1=2;A:2", True)]
    cols = st.step_columns(tokenizer, recs, ";")
    got = st.policy_step_confidence(tiny_policy_dir, recs, cols, "cpu")
    lp = policy_logprobs(AutoModelForCausalLM.from_pretrained(tiny_policy_dir), tokenizer,
                         [r.prompt for r in recs], [r.response for r in recs])
    # "7+3=0;" is tokens 0-5, "0*2=0;" 6-11, "A:0" + EOS 12-15
    want = [lp[0].sampled[0:6].mean(), lp[0].sampled[6:12].mean(), lp[0].sampled[12:16].mean()]
    assert np.allclose(got[0], want) and len(got[1]) == 2


def test_solutions_without_step_labels_skip_the_step_scores_with_the_reason(tokenizer):
    """A real evaluation set labelled by its final answer alone: no ProcessBench scores, the reason kept."""
    from types import SimpleNamespace

    recs = [GenerationRecord("q", "a\n\nb", True), GenerationRecord("q", "c", False)]
    inputs = SimpleNamespace(records=recs, separator="\n\n", prm_dirs={}, tokenizer=tokenizer)
    steps = st.read_step_readers(inputs, {}, "correct", "cpu")
    assert steps.labels is None and steps.scores == {} and "record 0: meta has neither" in steps.why_not
    out = st.step_analyses(inputs, steps, {}, [0.5], 10, (0, 5), 0.5, 0)
    assert out["processbench"].data == {"skipped": steps.why_not, "readers": {}}
    assert list(st.processbench_table(out["processbench"].data).columns) == ["skipped"]
