"""The process reward model as a pruning method of notebook 03: its step signal (probabilities at step ends), the
pruning rule on it (the first step below the threshold, tokens saved from that step's end), its threshold chosen on
validation as the Q-values' is, its place on the compute frontier, and a run without a PRM."""

import numpy as np
import pytest

from gcrm_kit.data import GenerationRecord
from gcrm_kit.filtering import (evaluate_offline, evaluate_pruning, load_setup, make_sample_set, prune_positions,
                                SampleScores)
from gcrm_kit.filtering.cost import Spend, checkpoint_params
from gcrm_kit.filtering.frontier import _grids
from gcrm_kit.filtering.frontier_inputs import FrontierInputs
from gcrm_kit.filtering.prm_pruning import prm_sample_scores, step_signal
from gcrm_kit.params import FilteringParams, RewardModelSpec, from_dict
from gcrm_kit.prm import prm_from_policy, prm_step_scores, step_positions

RIGHT, WRONG = (0.9, 0.8), (0.3, 0.1)
"""hand-made step probabilities (first step, last step): a wrong sample's first step already falls below 0.45,
its lowest probability sits on its last step"""


@pytest.fixture
def samples(tokenizer):
    """Two questions, two right and two wrong samples each, every one two steps: the ';' at response index 5 and
    the EOS at index 9 (character tokenizer)."""
    recs = []
    for q, (right, wrong) in enumerate([("1+4=5;A:5", "1+4=3;A:3"), ("2+5=7;A:7", "2+5=1;A:1")]):
        for resp, ok in ((right, True), (wrong, False), (right, True), (wrong, False)):
            recs.append(GenerationRecord(f"q{q}?", resp, ok, resp[-1]))
    return make_sample_set("t", recs, tokenizer)


def _signal(ss):
    return np.stack([step_signal(0, [5, 9], RIGHT if c else WRONG, int(n)) for c, n in zip(ss.correct, ss.length)])


def test_step_signal_holds_each_step_at_its_end_and_drops_ends_not_generated():
    row = step_signal(3, [8, 12, 20], np.array([0.5, 0.25, 0.75]), 15)
    assert row[5] == 0.5 and row[9] == 0.25 and np.isnan(np.delete(row, [5, 9])).all()  # index 17 is past the end


def test_a_sample_is_pruned_at_the_end_of_its_first_step_below_the_threshold(samples):
    prune = prune_positions(_signal(samples), 0.45, skip=5)
    wrong = ~samples.correct
    # not at the lowest probability (the last step): at the first step that falls below
    assert (prune[wrong] == 5).all() and (prune[~wrong] == -1).all()
    ev = evaluate_pruning(samples, prune, "random", "abstain")
    assert ev["tokens_generated"] == 4 * 10 + 4 * 6  # a pruned sample generated its first step, ';' included
    assert ev["share_tokens_saved"] == pytest.approx(16 / 80) and ev["accuracy"] == 1.0


def _scores(ss, with_prm):
    flat = np.where(np.arange(int(ss.length.max()))[None, :] < ss.length[:, None], 1.0, np.nan)
    out = {(w, 0): {s: SampleScores(flat, flat, np.ones(len(ss.length))) for s in ("validation", "test")}
           for w in ("goal", "baseline")}
    if with_prm:
        x = _signal(ss)
        out[("process", 0)] = {s: SampleScores(x, x, x[:, 9]) for s in ("validation", "test")}
    return out


def test_the_prm_threshold_is_chosen_on_validation_like_the_q_values(samples):
    p = from_dict(FilteringParams, {"threshold_quantiles": [0.0, 0.5, 1.0], "random_repeats": 1})
    res = evaluate_offline(p, {"validation": samples, "test": samples}, _scores(samples, True), [0])
    (row,) = [r for r in res.rows if r["method"] == "prm"]
    # sorted minima 0.1 x4, 0.8 x4: quantile 0.5 sits between them; quantile 1 prunes everything (accuracy 0)
    assert row["quantile"] == 0.5 and row["threshold"] == pytest.approx(0.45)
    assert row["accuracy"] == 1.0 and row["share_tokens_saved"] == pytest.approx(16 / 80)
    assert row["accuracy_unfiltered"] == 0.5  # two-way ties, random tie break
    assert list(res.chosen[("prm", 0)]["prune_at"]) == [-1, 5, -1, 5, -1, 5, -1, 5]
    assert {f["quantile"] for f in res.frontier if f["method"] == "prm"} == {0.0, 0.5, 1.0}
    assert [s["method"] for s in res.signals if s["method"] == "prm"] == ["prm"]
    without = evaluate_offline(p, {"validation": samples, "test": samples}, _scores(samples, False), [0])
    assert {r["method"] for r in without.rows} == {r["method"] for r in res.rows} - {"prm"}


def test_the_prm_on_the_frontier_pays_for_the_tokens_it_read(samples, tokenizer):
    p = from_dict(FilteringParams, {"threshold_quantiles": [0.0, 0.5, 1.0], "random_repeats": 1})
    sets = {"validation": samples, "test": samples}
    sc = _scores(samples, True)
    off = evaluate_offline(p, sets, sc, [0])
    prompts = {s: np.full(len(samples.length), 4) for s in sets}
    inp = FrontierInputs(prompts, 1000.0, {"goal": 10.0, "baseline": 10.0, "process": 7.0}, tokenizer)
    mode, settings, spend = _grids(p, inp, sets, sc, off, 0, 0)["prm"]
    (tau,) = [v for lab, v in settings if lab == "quantile 0.5"]
    sp: Spend = spend("test", tau)
    assert mode == "replay" and sp.scorer_params == 7.0  # replayed on the finished samples, not run online
    # it read every prompt and the tokens up to where it stopped: 4 + 10 for kept samples, 4 + 6 for pruned ones
    assert list(sp.scorer_read) == [14, 10] * 4 and list(sp.generated) == [10, 6] * 4
    assert "prm" not in _grids(p, inp, sets, _scores(samples, False), off, 0, 0)


def test_prm_sample_scores_are_prm_step_scores_at_the_step_ends(tiny_policy_dir, tokenizer):
    model, tok = prm_from_policy(tiny_policy_dir, ";", seed=0)
    recs = [GenerationRecord("3+4?", "3+4=7;7*2=4;A:4", True, "4"),
            GenerationRecord("3+4?", "3+4=7;7*2=", False, None, meta={"finished": False}),  # cut mid-step
            GenerationRecord("3+4?", "", False, None)]
    ss = make_sample_set("t", recs, tok)
    sig, last = prm_sample_scores(model, tok, ss)
    full = prm_step_scores(model, tok, ["3+4?"] * 2, [r.response for r in recs[:2]])
    _, pos = step_positions(tok, "3+4?", recs[0].response.split(";"), ";")
    start = 1 + len("3+4?")  # BOS + prompt
    assert np.allclose(sig[0, [q - start for q in pos]], full[0]) and np.isnan(sig[0]).sum() == ss.length[0] - 3
    # the unfinished sample: its first step read, its cut step not (it has no EOS to be read at)
    assert np.allclose(sig[1, 5], full[1][0]) and np.isnan(np.delete(sig[1], 5)).all()
    assert last[0] == pytest.approx(full[0][-1]) and last[1] == pytest.approx(full[1][0])
    assert np.isnan(sig[2]).all() and np.isnan(last[2])  # an empty response: nothing to read, never pruned
    assert checkpoint_params(tiny_policy_dir, "process") > 0


def test_the_prm_is_chosen_by_role_and_left_out_with_a_reason(tmp_path, fake_rm_run):
    outcome = [RewardModelSpec(name="baseline"), RewardModelSpec(name="goal_conditioned", contrastive_weight=0.5)]
    run = fake_rm_run(tmp_path / "a", outcome + [RewardModelSpec(name="steps", kind="process")], "process")
    setup = load_setup(from_dict(FilteringParams, {"rm_run": str(run)}))
    assert setup.prm_name == "steps" and [d.name for d in setup.prm_dirs] == ["steps_seed0", "steps_seed1"]
    assert setup.left_out == {}
    bare = load_setup(from_dict(FilteringParams, {"rm_run": str(fake_rm_run(tmp_path / "b", outcome, "process"))}))
    assert bare.prm_dirs == [] and bare.left_out["prm"].startswith("no reward model named or of role 'process'")
    off = load_setup(from_dict(FilteringParams, {"rm_run": str(run), "prm": ""}))
    assert off.prm_dirs == [] and off.left_out == {"prm": "prm is empty: no process reward model asked for"}
    wrong = load_setup(from_dict(FilteringParams, {"rm_run": str(run), "prm": "baseline"}))
    assert wrong.left_out["prm"].endswith("is not a process reward model (role 'baseline')")
