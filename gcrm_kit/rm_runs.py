"""The contract between notebook 01's run folders and notebooks 02-04: find a finished run, read its params, and
pick its reward models by what they are (their role, from the objective they were trained with) or by name.

A notebook-01 run folder is ``<output_root>/01_rm_training/<params>/<run>/`` with ``params.resolved.yaml``,
``metrics.json`` (written last: a run without it is unfinished) and ``reward_models/<name>[_n<N>]_seed<k>/``,
each model folder holding ``rm_spec.json`` (its objective and the policy it started from). The toy world's
sampled solutions live in the cache beside the run (``<output_root>/_cache``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path


from .data import GenerationRecord, load_jsonl
from .io import project_root, resolve_output_root
from .notebooks import params_path, run_notebook
from .params import ParamsError, RMTrainingParams, RewardModelSpec, dump_yaml, from_dict, load_params, read_yaml
from .runs import CACHE_DIRNAME, strip_run_dir
from .toyworld.problems import SPLITS
from .toyworld.sampling import cached_samples

log = logging.getLogger(__name__)

ROLES = ("baseline", "goal_conditioned", "grm", "goal_conditioned_grm", "process")
"""what a reward model is, read off its objective: `baseline` (Bradley-Terry alone), `goal_conditioned`
(Bradley-Terry + the contrastive term), `grm` (Bradley-Terry + a GRM text-generation regulariser),
`goal_conditioned_grm` (both terms), `process` (a process reward model: per-step probabilities, a
token-classification checkpoint, `gcrm_kit.prm`)"""


def role_of(spec: RewardModelSpec) -> str:
    """The role (see ROLES) of a reward model trained with `spec`."""
    if spec.kind == "process":
        return "process"
    goal, grm = spec.contrastive_weight > 0, spec.grm_weight > 0
    return {(False, False): "baseline", (True, False): "goal_conditioned", (False, True): "grm",
            (True, True): "goal_conditioned_grm"}[(goal, grm)]


def objective_of(spec: RewardModelSpec) -> dict:
    """What a reward model was trained to do, as metrics.json rows record it: role, contrastive weight (lambda),
    GRM weight (alpha), regulariser and beta (the regulariser's fields only when alpha > 0)."""
    out = {"role": role_of(spec), "contrastive_weight": spec.contrastive_weight, "grm_weight": spec.grm_weight}
    if spec.grm_weight > 0:
        out.update(grm_regulariser=spec.grm_regulariser, grm_beta=spec.grm_beta)
    if spec.kind != "outcome":
        out["kind"] = spec.kind
    return out


def relative_to(path, start: Path) -> str | None:
    """`path` relative to `start` when `path` is a local folder (None for a hub id)."""
    return os.path.relpath(Path(path).resolve(), Path(start).resolve()) if Path(path).is_dir() else None


def policy_dir_of(model_dir: Path) -> Path:
    """The policy the reward model in `model_dir` was trained from, as its rm_spec.json records it: an absolute
    path, and one relative to `model_dir` that is used when the absolute one is gone (the outputs folder was moved,
    or copied to another machine). A hub id comes back as it was written."""
    spec = json.loads((Path(model_dir) / "rm_spec.json").read_text())
    path = Path(spec["policy_dir"])
    rel = spec.get("policy_dir_relative")
    if not path.exists() and rel and (Path(model_dir) / rel).is_dir():
        return (Path(model_dir) / rel).resolve()
    return path


def reward_model_dir_in(run_dir: Path, spec: RewardModelSpec, rm_seed: int, n_pairs: int | None = None) -> Path:
    """<run>/reward_models/<name>_seed<k> (all training pairs) or <name>_n<N>_seed<k> (the first N pairs)."""
    size = "" if n_pairs is None else f"_n{n_pairs}"
    return Path(run_dir) / "reward_models" / f"{spec.name}{size}_seed{rm_seed}"


def find_rm_run(params: RMTrainingParams) -> Path | None:
    """The newest finished run folder of notebook 01 made with `params` (ignoring `run_dir`), or None. A run is
    finished when its metrics.json exists. A run's params are read back into the params class first, so a field the
    kit gained since (at its default) does not hide an earlier run; a run whose params no longer read is skipped."""
    want = strip_run_dir(dump_yaml(params))
    base = resolve_output_root(params.output_root) / params.notebook / params.params_stem
    for d in sorted(base.glob("*"), reverse=True):
        f = d / "params.resolved.yaml"
        if not ((d / "metrics.json").is_file() and f.is_file()):
            continue
        try:
            theirs = from_dict(RMTrainingParams, read_yaml(f.read_text()))
        except ParamsError:
            continue
        if strip_run_dir(dump_yaml(theirs)) == want:
            return d
    return None


def resolve_rm_run(rm_run: str, rm_params: str, output_root: str = "outputs") -> Path:
    """The notebook-01 run folder a later notebook builds on.

    `rm_run` names a run folder explicitly (absolute, or relative to the project root). When it is empty, the
    newest finished run made with ``params/01_rm_training/<rm_params>.yaml`` (and the same `output_root`) is
    reused, or notebook 01 is run now (through papermill, as `gcrm run` does) if there is none, so a later notebook
    run alone on toy params builds what it needs.
    """
    if rm_run:
        d = Path(rm_run).expanduser()
        d = d if d.is_absolute() else project_root() / d
        if not (d / "metrics.json").is_file():
            raise FileNotFoundError(f"rm_run={rm_run!r}: {d / 'metrics.json'} not found; is it a finished "
                                    "01_rm_training run folder?")
        return d
    p = load_params(RMTrainingParams.notebook, params_path(RMTrainingParams.notebook, rm_params))
    p.output_root = output_root
    found = find_rm_run(p)
    if found is not None:
        return found
    log.info("no finished 01_rm_training run for params %r: running notebook 01 now", rm_params)
    return run_notebook(RMTrainingParams.notebook, rm_params, overrides={"output_root": output_root})


def load_rm_run(run_dir: Path) -> tuple[RMTrainingParams, dict[str, list[Path]]]:
    """(params, {reward model name: [model dirs, one per rm seed]}) of a finished notebook-01 run folder."""
    p = from_dict(RMTrainingParams, read_yaml((Path(run_dir) / "params.resolved.yaml").read_text()))
    dirs = {spec.name: [reward_model_dir_in(run_dir, spec, s) for s in p.rm_seeds] for spec in p.reward_models}
    return p, dirs


def find_reward_model(p01: RMTrainingParams, wanted: str, run_dir: Path | None = None) -> str:
    """The name of the reward model of run params `p01` that `wanted` means: a model's name, or a role (ROLES)
    that exactly one of its models has. A ValueError names the run's models and their roles otherwise."""
    names = [s.name for s in p01.reward_models]
    if wanted in names:
        return wanted
    having = [s.name for s in p01.reward_models if role_of(s) == wanted]
    if len(having) == 1:
        return having[0]
    where = f" in {run_dir}" if run_dir else ""
    have = ", ".join(f"{s.name} ({role_of(s)})" for s in p01.reward_models)
    if not having:
        raise ValueError(f"no reward model named or of role {wanted!r}{where}; it has: {have}")
    raise ValueError(f"{len(having)} reward models of role {wanted!r}{where} ({having}); name one of them")


@dataclass
class SelectedModels:
    """Reward models of one finished notebook-01 run chosen by a later notebook."""

    run_dir: Path
    params: RMTrainingParams
    """the run's params (params.resolved.yaml)"""
    seeds: list[int]
    """the rm seeds chosen"""
    dirs: dict[str, list[Path]]
    """{model name: [model folder per chosen seed]} (models trained on all pairs)"""
    roles: dict[str, str]
    """{model name: role}"""


def select_reward_models(rm_dir: Path, wanted: list[str], seeds: list[int]) -> SelectedModels:
    """The reward models `wanted` (names or roles; empty: all) of rm seeds `seeds` (empty: all) of the finished
    notebook-01 run `rm_dir`. A ValueError names the run and what it has when a model or seed is not in it."""
    p01, dirs = load_rm_run(rm_dir)
    names = [find_reward_model(p01, w, rm_dir) for w in wanted] if wanted else list(dirs)
    seeds = list(seeds) or list(p01.rm_seeds)
    missing = [s for s in seeds if s not in p01.rm_seeds]
    if missing:
        raise ValueError(f"rm_seeds {missing} were not trained in {rm_dir}; it has {p01.rm_seeds}")
    specs = {s.name: s for s in p01.reward_models}
    return SelectedModels(Path(rm_dir), p01, seeds,
                          {n: [dirs[n][p01.rm_seeds.index(s)] for s in seeds] for n in names},
                          {n: role_of(specs[n]) for n in names})


def cache_root_of(rm_run_dir: Path, rm_params: RMTrainingParams) -> Path:
    """The artifact cache of a notebook-01 run: beside the run wherever the outputs folder is now (a run folder is
    <output_root>/01_rm_training/<params>/<run>), else under the run params' output_root."""
    if rm_run_dir.parent.parent.name == RMTrainingParams.notebook:
        return rm_run_dir.parents[2] / CACHE_DIRNAME
    return resolve_output_root(rm_params.output_root) / CACHE_DIRNAME


def eval_records_of_run(rm_dir: Path, p01: RMTrainingParams, split: str, policy_dir: Path
                        ) -> list[GenerationRecord]:
    """The evaluation records of `split` that notebook-01 run `rm_dir` scored: `data/eval_<split>.jsonl` in the run
    folder when it is there; for the toy world, its cached samples (found beside the run, or sampled again with the
    run's policy and params, which gives the same records)."""
    saved = rm_dir / "data" / f"eval_{split}.jsonl"
    if saved.is_file():
        return load_jsonl(saved, GenerationRecord)
    if p01.data.kind != "toy":
        raise FileNotFoundError(f"{saved}: not found; this real-data run keeps no evaluation records of {split!r} "
                                f"(its evaluation sets: {sorted(p01.data.eval_sets)})")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not a toy-world split; known: {sorted(SPLITS)}")
    return cached_samples(p01, cache_root_of(rm_dir, p01), policy_dir, split, "eval")
