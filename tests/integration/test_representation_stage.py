"""Notebook 02 end to end, executed by papermill as `gcrm run` executes it, on a hand-built notebook-01 run folder
with tiny random reward models (no training): it finds the run, samples and labels solutions, builds and saves
prototypes, and writes metrics, analyses and figures. Also the device rule of its reward models."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gcrm_kit.data import PreferencePair, save_jsonl
from gcrm_kit.models import load_reward_model, reward_model_from_policy
from gcrm_kit.notebooks import run_notebook
from gcrm_kit.params import RepresentationParams, RMTrainingParams, from_dict
from gcrm_kit.qvalues import Prototype, build_prototype, pooled_states, q_values
from gcrm_kit.representation import comparison_table, load_inputs, read_reward_models
from gcrm_kit.runs import start_run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def fake_rm_run(tiny_policy_dir, tmp_path):
    p01 = from_dict(RMTrainingParams, {"params_name": "fake", "output_root": str(tmp_path), "rm_seeds": [0, 1],
                                       "evaluation": {"n_questions": 12, "splits": ["id"]},
                                       "pairs": {"max_new_tokens": 24}})
    run = start_run(p01)
    pairs = [PreferencePair(f"{i}+1?", f"{i}+1={(i + 1) % 10};A:{(i + 1) % 10}", f"{i}+1=0;A:0")
             for i in range(1, 9)]
    save_jsonl(pairs, run.path("data", "train_pairs.jsonl"))
    for name in ("baseline", "goal_conditioned"):  # the default models of RMTrainingParams, one of each role
        for seed in (0, 1):
            model, tok = reward_model_from_policy(tiny_policy_dir, seed=seed)
            d = run.dir / "reward_models" / f"{name}_seed{seed}"
            model.save_pretrained(d)
            tok.save_pretrained(d)
            (d / "rm_spec.json").write_text(json.dumps({"policy_dir": str(tiny_policy_dir)}))
            build_prototype(model, tok, [x.prompt for x in pairs], [x.chosen for x in pairs], "correct").save(d)
    run.write_json("metrics.json", {})
    return run.dir


def test_notebook_end_to_end(fake_rm_run, tmp_path, monkeypatch):
    params = tmp_path / "fake.yaml"
    params.write_text(yaml.safe_dump({
        "params_name": "fake", "output_root": str(tmp_path), "rm_run": str(fake_rm_run), "n_samples": 0,
        "n_bootstrap": 20, "n_examples": 2, "fractions": [0.0, 0.2, 0.5, 1.0], "device": "cpu",
        "projection": {"n_sequences": 4, "methods": ["pca", "umap"]}}))
    monkeypatch.chdir(ROOT)
    run_dir = run_notebook(RepresentationParams.notebook, str(params), log_output=False)
    assert (run_dir / f"{RepresentationParams.notebook}.ipynb").is_file()
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["inputs"]["rm_seeds"] == [0, 1] and m["inputs"]["n_samples"] > 0 and m["device"] == "cpu"
    assert m["inputs"]["roles"] == {"baseline": "baseline", "goal_conditioned": "goal_conditioned"}
    assert set(m["partial_auroc"]) == {"baseline", "goal_conditioned"}
    assert set(m["partial_auroc"]["baseline"]) == {"correct", "incorrect", "correct_mean", "correct_random", "head"}
    assert all(d < 1e-5 for d in m["prototype_check_max_abs_diff"].values())
    assert len(m["prototype_check_max_abs_diff"]) == 4
    for name in ("partial_auroc", "mean_curves", "example_curves", "error_localisation", "reward_correlations",
                 "projection_pca"):
        assert (run_dir / "figures" / f"{name}.html").is_file()
        assert (run_dir / "analyses" / f"{name}.json").is_file()
    # drawn, or skipped with a note when umap-learn is absent
    assert (run_dir / "analyses" / "projection_umap.json").is_file()
    # the Q-values read in one pass end, at the EOS, at the cosine of a direct forward pass's EOS state with the
    # prototype saved in the run folder
    ex = json.loads((run_dir / "analyses" / "example_curves.json").read_text())["examples"]
    assert ex
    model, tok = load_reward_model(fake_rm_run / "reward_models" / "baseline_seed0")
    eos = pooled_states(model, tok, [e["prompt"] for e in ex], [e["response"] for e in ex], "last")
    g = Prototype.load(run_dir / "reward_models" / "baseline_seed0", "correct").vector
    np.testing.assert_allclose([e["values"]["baseline"][-1] for e in ex], q_values(eos, g).numpy(),
                               rtol=1e-4, atol=1e-5)
    saved = run_dir / "reward_models" / "goal_conditioned_seed1" / "prototypes" / "correct_random.json"
    prov = json.loads(saved.read_text())
    assert prov["pooling"] == "random" and prov["data_slice"] == "chosen" and prov["count"] == 8
    assert prov["checkpoint"].endswith("goal_conditioned_seed1")
    # with one class only (a random policy is rarely right), AUROCs are NaN, not a made-up 0.5
    if m["inputs"]["n_correct"] in (0, m["inputs"]["n_samples"]):
        assert np.isnan(m["partial_auroc"]["baseline"]["head"]["1.0"]["mean"])
    else:
        assert "goal_conditioned" in comparison_table(m).columns


def _params(fake_rm_run, tmp_path, **kw):
    return from_dict(RepresentationParams, {"output_root": str(tmp_path), "rm_run": str(fake_rm_run),
                                            "n_samples": 6, **kw})


def test_reward_models_are_picked_by_role(fake_rm_run, tmp_path):
    inputs = load_inputs(_params(fake_rm_run, tmp_path, reward_models=["goal_conditioned"], rm_seeds=[1]))
    assert list(inputs.model_dirs) == ["goal_conditioned"] and inputs.rm_seeds == [1]
    assert inputs.roles == {"goal_conditioned": "goal_conditioned"}
    assert [d.name for d in inputs.model_dirs["goal_conditioned"]] == ["goal_conditioned_seed1"]


def test_unknown_split_is_named(fake_rm_run, tmp_path):
    with pytest.raises(ValueError, match="'gsm8k' is not a toy-world split"):
        load_inputs(_params(fake_rm_run, tmp_path, split="gsm8k"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_asking_for_a_gpu_that_is_not_there_is_refused(fake_rm_run, tmp_path):
    p = _params(fake_rm_run, tmp_path, device="cuda", rm_seeds=[0])
    run = start_run(p)
    with pytest.raises(ValueError, match="device 'cuda': no GPU is visible to torch here"):
        read_reward_models(p, run, load_inputs(p, run))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_reward_models_run_on_the_gpu_with_the_cpu_numbers(fake_rm_run, tmp_path):
    out = {}
    for device in ("cpu", "cuda"):
        p = _params(fake_rm_run, tmp_path / device, device=device, rm_seeds=[0])
        run = start_run(p)
        out[device] = read_reward_models(p, run, load_inputs(p, run))
    assert out["cpu"].device == "cpu" and out["cuda"].device == "cuda"
    for name, per_seed in out["cpu"].values.items():
        cpu, gpu = per_seed[0], out["cuda"].values[name][0]
        np.testing.assert_allclose(gpu.head, cpu.head, atol=1e-4, rtol=1e-3)
        for proto in cpu.q:
            np.testing.assert_allclose(gpu.q[proto], cpu.q[proto], atol=1e-4, rtol=1e-3)
        assert isinstance(gpu.hidden[0], np.ndarray)
        for proto, v in out["cuda"].prototypes[name][0].items():
            assert v.vector.device.type == "cpu"
            torch.testing.assert_close(v.vector, out["cpu"].prototypes[name][0][proto].vector, atol=1e-4, rtol=1e-3)
