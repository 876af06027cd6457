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
