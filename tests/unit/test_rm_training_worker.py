"""A launched training run: the job file names the worker module every process runs with ``python -m``, the
launcher's command runs that module, and the worker dispatches the job to its function (an unknown job is named)."""

import json

import pytest

from gcrm_kit import launch, launch_worker
from gcrm_kit.launch import LaunchError, launch_command
from gcrm_kit.rm_training import worker
from gcrm_kit.rm_training.train import WORKER


def test_the_command_runs_the_jobs_module(tmp_path):
    for launcher in ("torchrun", "deepspeed"):
        cmd = launch_command(launcher, 2, WORKER, tmp_path / "j.json", 1234, visible_devices="")
        assert cmd[-2:] == [WORKER, str(tmp_path / "j.json")]
    assert WORKER == worker.__name__ and "fit_reward_model" in worker.JOBS


def test_a_job_file_without_a_module_is_refused(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"stage": "fit_reward_model"}))
    with pytest.raises(LaunchError, match=r"job\.json: no 'module' key"):
        launch.run_launched(job, 2)


def test_run_job_dispatches_by_stage(tmp_path):
    job = tmp_path / "job.json"
    launch.write_job(job, WORKER, "echo", value=3)
    seen = []
    assert launch_worker.run_job({"echo": lambda j: seen.append(j)}, [str(job), "--local_rank=0"]) == 0
    assert seen == [{"module": WORKER, "stage": "echo", "value": 3}]
    known = r"\['fit_process_model', 'fit_reward_model'\]"
    with pytest.raises(SystemExit, match=r"job\.json: unknown stage 'echo'; known: " + known):
        worker.main([str(job)])


def test_a_process_reward_model_job_reaches_fit_process_model_with_its_examples(tmp_path, monkeypatch):
    """What `train_one_process_model` writes for a launched run reads back in the worker as the same examples,
    separator, spec and seed."""
    from gcrm_kit.params import RewardModelSpec, RMTrainingParams, dump_yaml, from_dict, to_dict
    from gcrm_kit.prm import StepwiseExample
    from gcrm_kit.rm_training.process_data import examples_file

    p = from_dict(RMTrainingParams, {"reward_models": [{"name": "prm", "kind": "process"}]})
    (tmp_path / "params.yaml").write_text(dump_yaml(p))
    ex = [StepwiseExample("1+1?", ["1+1=2", "A:2"], [True, 0.5])]
    job = launch.write_job(tmp_path / "job.json", WORKER, "fit_process_model", params_file=tmp_path / "params.yaml",
                           examples_file=examples_file(tmp_path / "ex.jsonl", ex), policy_dir="pol", separator=";",
                           spec=to_dict(p.reward_models[0]), rm_seed=2, out_dir=str(tmp_path / "out"))
    seen = []
    monkeypatch.setattr(worker, "fit_process_model", lambda *a: seen.append(a))
    assert worker.main([str(job)]) == 0
    (got_p, policy, got_ex, sep, spec, seed, out), = seen
    assert got_ex == ex and sep == ";" and seed == 2 and spec == RewardModelSpec("prm", kind="process")
    assert str(policy) == "pol" and out == tmp_path / "out" and got_p.reward_models == p.reward_models
