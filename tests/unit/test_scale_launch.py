"""The deepspeed launcher gets the job's GPUs: CUDA_VISIBLE_DEVICES becomes --include localhost:<ids> (the runner
drops the variable when given --num_gpus and would start on GPUs 0..n-1), and their count must match."""

import subprocess
import sys
from pathlib import Path

import pytest

from gcrm_kit import launch
from gcrm_kit.launch import launch_command, visible_gpu_ids
from gcrm_kit.rm_training.train import WORKER as W


def test_deepspeed_gets_the_visible_gpus_as_include():
    cmd = launch_command("deepspeed", 4, W, Path("j.json"), 1234, visible_devices="4,5,6,7")
    assert "--include=localhost:4,5,6,7" in cmd and not any(x.startswith("--num_gpus") for x in cmd)
    assert cmd[-3:] == ["--module", W, "j.json"]
    # no variable (or an empty one): all of the machine's GPUs are there, the first n are used
    for visible in ("", " "):
        assert "--num_gpus=4" in launch_command("deepspeed", 4, W, Path("j.json"), 1234, visible_devices=visible)
    # torchrun keeps the variable in its children's environment: nothing to pass
    assert not any("include" in x for x in launch_command("torchrun", 4, W, Path("j.json"), 1, visible_devices="4,5"))


def test_deepspeed_reads_the_environment(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpu_ids() == [2, 3]
    assert "--include=localhost:2,3" in launch_command("deepspeed", 2, W, Path("j.json"), 1234)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpu_ids() is None
    assert "--num_gpus=2" in launch_command("deepspeed", 2, W, Path("j.json"), 1234)


def test_gpu_count_must_match_the_processes():
    with pytest.raises(ValueError, match=r"n_processes=8, but CUDA_VISIBLE_DEVICES gives 4 GPU\(s\) \(4,5,6,7\)"):
        launch_command("deepspeed", 8, W, Path("j.json"), 1234, visible_devices="4,5,6,7")
    with pytest.raises(ValueError, match="GPU indices"):
        launch_command("deepspeed", 1, W, Path("j.json"), 1234, visible_devices="GPU-5c2a1e4b-8d3f")


def test_include_is_what_the_installed_runner_reads():
    runner = pytest.importorskip("deepspeed.launcher.runner")
    cmd = launch_command("deepspeed", 4, W, Path("j.json"), 1234, visible_devices="4,5,6,7")
    args = runner.parse_args(cmd[3:])
    assert args.num_gpus == -1 and args.module and args.user_script == W
    assert dict(runner.parse_inclusion_exclusion({"localhost": 8}, args.include, args.exclude)) == \
        {"localhost": [4, 5, 6, 7]}


def test_run_launched_leaves_the_variable_to_include(tmp_path, monkeypatch):
    seen = {}
    real_popen = subprocess.Popen

    def popen(cmd, **kw):
        seen["cmd"], seen["env"] = cmd, kw["env"]
        return real_popen([sys.executable, "-c", "pass"], stdout=kw["stdout"], stderr=kw["stderr"])

    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    job = tmp_path / "job.json"
    launch.write_job(job, W, "fit_reward_model")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    with open(tmp_path / "out.txt", "w") as stream:
        launch.run_launched(job, 2, "deepspeed", stream=stream)
    assert "--include=localhost:4,5" in seen["cmd"] and "CUDA_VISIBLE_DEVICES" not in seen["env"]
    with open(tmp_path / "out.txt", "w") as stream:
        launch.run_launched(job, 2, "torchrun", stream=stream)
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == "4,5"
