"""What each process of a launched reward-model training runs: ``python -m gcrm_kit.rm_training.worker <job.json>``.

Every process reads the same job file (written by `train.train_one_reward_model` through `launch.write_job`),
loads the resolved params it names and calls `fit.fit_reward_model`, the same function the notebook calls
in-process. Only the main process writes artifacts.
"""

from __future__ import annotations

from pathlib import Path

from ..data import PreferencePair, load_jsonl
from ..launch_worker import exit_now, run_job
from ..params import RMTrainingParams, RewardModelSpec, from_dict, read_yaml
from .fit import fit_reward_model
from .process_data import read_examples_file
from .process_fit import fit_process_model


def fit_reward_model_job(job: dict) -> None:
    """Train one reward model: job keys params_file, pairs_file, policy_dir, spec, rm_seed, out_dir."""
    p = from_dict(RMTrainingParams, read_yaml(Path(job["params_file"]).read_text()))
    pairs = load_jsonl(job["pairs_file"], PreferencePair)
    spec = from_dict(RewardModelSpec, job["spec"])
    fit_reward_model(p, Path(job["policy_dir"]), pairs, spec, int(job["rm_seed"]), Path(job["out_dir"]))


def fit_process_model_job(job: dict) -> None:
    """Train one process reward model: job keys params_file, examples_file, policy_dir, separator, spec, rm_seed,
    out_dir."""
    p = from_dict(RMTrainingParams, read_yaml(Path(job["params_file"]).read_text()))
    fit_process_model(p, Path(job["policy_dir"]), read_examples_file(Path(job["examples_file"])), job["separator"],
                      from_dict(RewardModelSpec, job["spec"]), int(job["rm_seed"]), Path(job["out_dir"]))


JOBS = {"fit_reward_model": fit_reward_model_job, "fit_process_model": fit_process_model_job}


def main(argv: list[str] | None = None) -> int:
    """Run the job file named in `argv` (default: the command line); 0 after success, an exception otherwise."""
    return run_job(JOBS, argv, prog="python -m gcrm_kit.rm_training.worker")


if __name__ == "__main__":
    exit_now(main())  # main returns only after success; a failure raises and exits the ordinary way
