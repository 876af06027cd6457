"""The notebook-01 run notebook 03 builds on: its params, its policy, and the goal-conditioned and baseline reward
models of every rm seed, chosen by name or by role through `gcrm_kit.rm_runs`, and its process reward model when it
has one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..params import FilteringParams, RMTrainingParams
from ..rm_runs import objective_of, policy_dir_of, resolve_rm_run, select_reward_models
from .prm_pruning import find_prm


@dataclass
class RMSetup:
    """The notebook-01 run this stage builds on: its params, the policy, and the two reward models per seed."""

    run_dir: Path
    rm_params: RMTrainingParams
    policy_dir: Path
    rm_seeds: list[int]
    model_dirs: dict[str, list[Path]]
    """'goal' and 'baseline' -> one checkpoint folder per rm seed"""
    names: dict[str, str]
    """'goal' and 'baseline' -> the reward model's name in the notebook-01 run"""
    prm_dirs: list[Path] = field(default_factory=list)
    """the process reward model's checkpoint folder per rm seed (`FilteringParams.prm`); empty: none"""
    prm_name: str = ""
    """its name in the notebook-01 run ("" when there is none)"""
    left_out: dict[str, str] = field(default_factory=dict)
    """method -> why it is left out (`prm` when the run has no process reward model)"""

    def objectives(self) -> dict[str, dict]:
        """'goal' and 'baseline' -> {name, role, contrastive_weight, grm_weight, ...}: what each model was
        trained to do (`rm_runs.objective_of`)."""
        specs = {s.name: s for s in self.rm_params.reward_models}
        return {which: {"name": name, **objective_of(specs[name])} for which, name in self.names.items()}


def load_setup(p: FilteringParams) -> RMSetup:
    """Find (or train) the notebook-01 run of `p` and pick its reward models `p.goal_rm` and `p.baseline_rm`, each
    a model name or a role (`rm_runs.ROLES`), and its process reward model `p.prm` when it has one (otherwise
    `left_out['prm']` says why). A ValueError names the run and its models when one is not there, or
    when both name the same model."""
    run_dir = resolve_rm_run(p.rm_run, p.rm_params, p.output_root)
    sel = select_reward_models(run_dir, [p.goal_rm, p.baseline_rm], [])
    if len(sel.dirs) < 2:
        (name,) = sel.dirs
        raise ValueError(f"goal_rm={p.goal_rm!r} and baseline_rm={p.baseline_rm!r} both mean reward model {name!r} "
                         f"of {run_dir}; name two different models (its models: "
                         f"{[s.name for s in sel.params.reward_models]})")
    goal, baseline = sel.dirs
    setup = RMSetup(run_dir, sel.params, policy_dir_of(sel.dirs[goal][0]), list(sel.seeds),
                    {"goal": sel.dirs[goal], "baseline": sel.dirs[baseline]}, {"goal": goal, "baseline": baseline})
    prm, why = find_prm(sel.params, p.prm, run_dir)
    if prm is None:
        setup.left_out["prm"] = why
    else:
        setup.prm_name, setup.prm_dirs = prm, select_reward_models(run_dir, [prm], setup.rm_seeds).dirs[prm]
    return setup
