"""The headless stage of notebook 02 end to end, on a hand-built notebook-01 run folder with tiny random reward
models (no training): it finds the run, samples and labels solutions, builds and saves prototypes, and writes
metrics, analyses and figures."""

import json

import numpy as np
import pytest

from gcrm_kit.data import PreferencePair, save_jsonl
from gcrm_kit.models import reward_model_from_policy
from gcrm_kit.params import RepresentationParams, RMTrainingParams, from_dict
from gcrm_kit.qvalues import build_prototype
from gcrm_kit.representation import analyse_representations, comparison_table
from gcrm_kit.runs import start_run


@pytest.fixture
def fake_rm_run(tiny_policy_dir, tmp_path):
    p01 = from_dict(RMTrainingParams, {"params_name": "fake", "output_root": str(tmp_path), "rm_seeds": [0, 1],
                                       "evaluation": {"n_questions": 12, "splits": ["id"]},
                                       "pairs": {"max_new_tokens": 24}})
    run = start_run(p01)
    pairs = [PreferencePair(f"{i}+1?", f"{i}+1={(i + 1) % 10};A:{(i + 1) % 10}", f"{i}+1=0;A:0")
             for i in range(1, 9)]
    save_jsonl(pairs, run.path("data", "train_pairs.jsonl"))
    for name in ("baseline", "goal_conditioned"):
        for seed in (0, 1):
            model, tok = reward_model_from_policy(tiny_policy_dir, seed=seed)
            d = run.dir / "reward_models" / f"{name}_seed{seed}"
            model.save_pretrained(d)
            tok.save_pretrained(d)
            (d / "rm_spec.json").write_text(json.dumps({"policy_dir": str(tiny_policy_dir)}))
            build_prototype(model, tok, [x.prompt for x in pairs], [x.chosen for x in pairs], "correct").save(d)
    run.write_json("metrics.json", {})
    return run.dir


def test_stage_end_to_end(fake_rm_run, tmp_path):
    p = from_dict(RepresentationParams, {
        "params_name": "fake", "output_root": str(tmp_path), "rm_run": str(fake_rm_run), "n_samples": 0,
        "n_bootstrap": 20, "n_examples": 2, "fractions": [0.0, 0.2, 0.5, 1.0],
        "projection": {"n_sequences": 4, "methods": ["pca", "umap"]}})
    res = analyse_representations(p)
    m = json.loads((res.run_dir / "metrics.json").read_text())
    assert m["inputs"]["rm_seeds"] == [0, 1] and m["inputs"]["n_samples"] > 0
    assert set(m["partial_auroc"]) == {"baseline", "goal_conditioned"}
    assert set(m["partial_auroc"]["baseline"]) == {"correct", "incorrect", "correct_mean", "correct_random", "head"}
    assert all(d < 1e-5 for d in m["prototype_check_max_abs_diff"].values())
    assert len(m["prototype_check_max_abs_diff"]) == 4
    for name in ("partial_auroc", "mean_curves", "example_curves", "error_localisation", "reward_correlations",
                 "projection_pca"):
        assert (res.run_dir / "figures" / f"{name}.html").is_file()
        assert (res.run_dir / "analyses" / f"{name}.json").is_file()
    assert "projection_umap" in res.analyses  # drawn, or skipped with a note when umap-learn is absent
    # the reward head at 100% is the reward itself: its per-seed values match a direct scoring of the samples
    tv = res.readout.values["baseline"][1]
    np.testing.assert_allclose(tv.at_fraction("head", 1.0), tv.rewards)
    saved = res.run_dir / "reward_models" / "goal_conditioned_seed1" / "prototypes" / "correct_random.json"
    prov = json.loads(saved.read_text())
    assert prov["pooling"] == "random" and prov["data_slice"] == "chosen" and prov["count"] == 8
    assert prov["checkpoint"].endswith("goal_conditioned_seed1")
    # with one class only (a random policy is rarely right), AUROCs are NaN, not a made-up 0.5
    if res.inputs.labels.all() or not res.inputs.labels.any():
        assert np.isnan(m["partial_auroc"]["baseline"]["head"]["1.0"]["mean"])
    else:
        comparison_table(m)


def test_unknown_split_is_named(fake_rm_run, tmp_path):
    from gcrm_kit.representation import load_inputs

    p = from_dict(RepresentationParams, {"output_root": str(tmp_path), "rm_run": str(fake_rm_run), "split": "gsm8k"})
    with pytest.raises(ValueError, match="'gsm8k' is not a toy-world split"):
        load_inputs(p)
