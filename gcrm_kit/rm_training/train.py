"""Training notebook 01's reward models: one model in this process or through the launcher (`train_one_reward_model`),
then every model of the params for every seed and data size, each evaluated, with metrics.json written
(`train_and_evaluate`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..data import PreferencePair, save_jsonl
from ..device import resolve_device
from ..evaluation import pairwise_p_above_chance
from ..io import atomic_write_text
from ..launch import run_launched, write_job
from ..memory import estimate_memory
from ..params import RMTrainingParams, RewardModelSpec, dump_yaml, to_dict
from ..rm_runs import objective_of, reward_model_dir_in
from ..runs import Run
from .accelerator import release_accelerator_memory
from .evaluate import evaluate_reward_model, warn_chance_level
from .finish import DONE, finish_reward_model
from .fit import fit_reward_model
from .report import RMTrainingResult, data_size_curve, skip_counts, summarise, write_metrics
from .process_data import build_process_data
from .process_fit import evaluate_process_model, train_one_process_model
from .world import RMData

WORKER = "gcrm_kit.rm_training.worker"
"""the module every process of a launched run executes (`python -m`); named, not imported: it runs as __main__"""


def reward_model_dir(run: Run, spec: RewardModelSpec, rm_seed: int, n_pairs: int | None = None) -> Path:
    """<run>/reward_models/<name>_seed<k>, or <name>_n<N>_seed<k> for a model trained on the first N pairs."""
    return reward_model_dir_in(run.dir, spec, rm_seed, n_pairs)


def subset_params(p: RMTrainingParams, n_pairs: int, n_all: int) -> RMTrainingParams:
    """The params a model trained on `n_pairs` of the `n_all` training pairs trains with: under
    `subset_schedule: same_steps` its epochs are scaled by n_all / n_pairs, so it takes as many optimiser steps
    as a model trained on all pairs; otherwise `p` itself."""
    if p.subset_schedule != "same_steps" or n_pairs >= n_all:
        return p
    return replace(p, training=replace(p.training, epochs=p.training.epochs * n_all / n_pairs))


def train_one_reward_model(p: RMTrainingParams, world: RMData, spec: RewardModelSpec, rm_seed: int,
                           out_dir: Path, train_pairs: list[PreferencePair] | None = None) -> Path:
    """Train one reward model into `out_dir` (resuming from its checkpoints if any) and save it as a standard
    sequence-classification checkpoint with its tokenizer, training log and the `correct` prototype.
    `train_pairs` defaults to all of `world.train_pairs`. A finished model (marked DONE) is returned as is.

    With `p.distributed.n_processes` > 1 the training runs under the launcher (`gcrm_kit.launch`) as a subprocess
    whose log streams here; this process then checks and finishes the saved checkpoint."""
    if (out_dir / DONE).is_file():
        return out_dir
    train_pairs = world.train_pairs if train_pairs is None else train_pairs
    out_dir.mkdir(parents=True, exist_ok=True)
    if p.model.backbone or p.distributed.n_processes > 1 or p.lora.enabled or p.quant.load_in_4bit:
        est, mode = estimate_memory(p, world.policy_dir, spec)
        print(est.describe(mode), flush=True)
    if p.distributed.n_processes > 1:
        if not (out_dir / "SAVED").is_file():
            launch_dir = out_dir / "launch"
            params_file = launch_dir / "params.yaml"
            atomic_write_text(params_file, dump_yaml(p))
            pairs_file = launch_dir / "train_pairs.jsonl"
            save_jsonl(train_pairs, pairs_file)
            job = write_job(launch_dir / "fit_reward_model.json", WORKER, "fit_reward_model", params_file=params_file,
                            pairs_file=pairs_file, policy_dir=str(world.policy_dir), spec=to_dict(spec),
                            rm_seed=rm_seed, out_dir=str(out_dir.resolve()))
            release_accelerator_memory()  # models this process put on the GPU (answering, scoring, prototypes)
            run_launched(job, p.distributed.n_processes, p.distributed.launcher)
    elif not (out_dir / "SAVED").is_file():
        fit_reward_model(p, world.policy_dir, train_pairs, spec, rm_seed, out_dir, world.screened.get("train"))
    return finish_reward_model(p, world, out_dir, train_pairs)


def train_and_evaluate(p: RMTrainingParams, run: Run, world: RMData) -> RMTrainingResult:
    """Train every reward model of `p.reward_models` for every seed of `p.rm_seeds` on the same pairs (and, for
    each count in `p.train_pair_counts`, on the first that many pairs), evaluate each on `resolve_device(p.device)`,
    and write metrics.json (one row per model, seed and data size, with the model's `objective` (rm_runs.objective_of);
    a mean/std summary on all pairs; the data-size curve). Process reward models (`kind: process`) train on the
    stepwise examples of `build_process_data` (the first N pairs' solutions for a subset) and are evaluated by
    `evaluate_process_model`; what labelling their steps cost goes to metrics.json (`process_labels`)."""
    rows, dirs = [], {}
    counts = sorted({n for n in p.train_pair_counts if n < len(world.train_pairs)})
    process = build_process_data(p, run, world) if any(s.kind == "process" for s in p.reward_models) else None
    for n in counts + [None]:
        pairs = world.train_pairs if n is None else world.train_pairs[:n]
        pn = subset_params(p, len(pairs), len(world.train_pairs))
        for spec in p.reward_models:
            for rm_seed in p.rm_seeds:
                out_dir = reward_model_dir(run, spec, rm_seed, n)
                if spec.kind == "process":
                    d = train_one_process_model(pn, world, process, spec, rm_seed, out_dir, n)
                    m = evaluate_process_model(d, world, p.evaluation.batch_size, device=resolve_device(p.device))
                else:
                    d = train_one_reward_model(pn, world, spec, rm_seed, out_dir, pairs)
                    m = evaluate_reward_model(d, world, p.evaluation.batch_size, device=resolve_device(p.device))
                if n is None:
                    dirs.setdefault(spec.name, []).append(d)
                rows.append({"reward_model": spec.name, "objective": objective_of(spec), "rm_seed": rm_seed,
                             "n_train_pairs": len(pairs), "all_pairs": n is None, **m,
                             "pairwise_p_above_chance": pairwise_p_above_chance(m.get("pairwise_accuracy"),
                                                                                len(world.heldout_pairs))})
    warn_chance_level(rows)
    full = [r for r in rows if r["all_pairs"]]
    summary = summarise(full, list(world.eval_records))
    curve = data_size_curve(rows, list(world.eval_records)) if counts else []
    skipped = skip_counts(world, [d for ds in dirs.values() for d in ds], full)
    result = RMTrainingResult(run.dir, world, rows, summary, dirs, curve, skipped,
                              process.cost if process is not None else {})
    write_metrics(run, p, result)
    return result
