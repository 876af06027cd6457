"""What notebook 04 builds on, from a notebook-01 run folder made by hand (tiny random reward models, no training):
reward models chosen by role resolve to the run's model names everywhere the stage uses them, their objectives
reach metrics.json, and the device param takes every name of the kit's one device rule. Seconds."""

import json

import numpy as np
import pytest

from gcrm_kit import steering as S
from gcrm_kit.data import PreferencePair, save_jsonl
from gcrm_kit.models import reward_model_from_policy
from gcrm_kit.params import ParamsError, RewardModelSpec, RMTrainingParams, SteeringParams, dump_yaml, from_dict
from gcrm_kit.runs import start_run
from gcrm_kit.toyworld import SPLITS, sample_problem


@pytest.fixture(scope="module")
def rm_run(tmp_path_factory, tiny_policy_dir):
    """A finished notebook-01 run folder whose models are named unlike their roles: `bt` (Bradley-Terry alone,
    role baseline) and `contrastive` (role goal_conditioned), rm seed 0, toy pairs with right and wrong answers."""
    d = tmp_path_factory.mktemp("rm_run")
    p01 = RMTrainingParams(reward_models=[RewardModelSpec("bt", 0.0), RewardModelSpec("contrastive", 0.5)])
    (d / "params.resolved.yaml").write_text(dump_yaml(p01))
    (d / "metrics.json").write_text("{}")
    for spec in p01.reward_models:
        model, tok = reward_model_from_policy(tiny_policy_dir, seed=0)
        out = d / "reward_models" / f"{spec.name}_seed0"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "rm_spec.json").write_text(json.dumps({"name": spec.name, "policy_dir": str(tiny_policy_dir)}))
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(16):
        prob = sample_problem(rng, SPLITS["id"])
        sol = prob.solution()
        pairs.append(PreferencePair(prob.prompt, sol, sol[:-1] + str((int(sol[-1]) + 1) % 10)))  # other parity
    save_jsonl(pairs[:12], d / "data" / "train_pairs.jsonl")
    save_jsonl(pairs[12:], d / "data" / "heldout_pairs.jsonl")
    return d


def _params(rm_run, tmp_path, **kw):
    return from_dict(SteeringParams, {"rm_run": str(rm_run), "output_root": str(tmp_path), "n_prompts": 2,
                                      "prototype_examples": 24, "device": "cpu", "exact_oracle": False,
                                      "beam": {"beam_size": 2, "max_steps": 2, "max_step_tokens": 6}, **kw})


def test_reward_models_chosen_by_role(rm_run, tmp_path):
    p = _params(rm_run, tmp_path, reward_models=["goal_conditioned", "bt"], judge_reward_model="goal_conditioned")
    run = start_run(p)
    setup = S.prepare(p, run)
    assert setup.reward_models == ["contrastive", "bt"]
    assert setup.reward_model_name("goal_conditioned") == "contrastive" and setup.reward_model_name("bt") == "bt"
    assert {n: o["role"] for n, o in setup.objectives.items()} == {"contrastive": "goal_conditioned", "bt": "baseline"}
    assert setup.objectives["contrastive"]["contrastive_weight"] == 0.5
    # the steps that pick "the first reward model" use the selected model's name, not the role
    cache = S.check_cache(p, setup, n_prompts=1)
    assert cache["reward_model"] == "contrastive" and cache["same_responses"]
    assert S.worked_example(p, setup).startswith("reward model contrastive (seed 0)")
    result = S.SteeringResult(run.dir, [], [], [], {}, {})
    metrics = S.write_metrics(p, run, setup, result, S.label_counts(p, setup))
    saved = json.loads((run.dir / "metrics.json").read_text())
    assert saved["reward_model_objectives"] == metrics["reward_model_objectives"] == setup.objectives
    assert json.loads((run.dir / "setup.json").read_text())["reward_models"].keys() == {"contrastive", "bt"}


def test_device_param_takes_every_name_of_the_device_rule():
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:1"):  # params do no I/O: no GPU needed to name one
        assert from_dict(SteeringParams, {"device": device}).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "mps"])
def test_other_devices_are_refused(device):
    with pytest.raises(ParamsError, match=r"device: expected one of auto, cpu, cuda or cuda:<index>"):
        from_dict(SteeringParams, {"device": device})

