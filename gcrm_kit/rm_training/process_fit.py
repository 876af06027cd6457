"""Training, checking and evaluating one process reward model of notebook 01 (`kind: process`), in the order of
`fit.py`: training arguments (the outcome models' own, same `training` and scale settings), seed, tokenizer and
model (from the policy, `prm.prm_from_policy`), data, trainer (`prm.ProcessTrainer`), train (resuming from the
last checkpoint), save as a plain two-label `AutoModelForTokenClassification` checkpoint (LoRA merged)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import evaluation
from ..device import resolve_device
from ..io import atomic_write_json, atomic_write_text, normal_permissions, to_jsonable
from ..launch import run_launched, write_job
from ..params import ModelParams, RMTrainingParams, RewardModelSpec, dump_yaml, to_dict
from ..prm import (ProcessTrainer, StepwiseCollator, StepwiseExample, encode_examples, load_prm, merge_prm_adapter,
                   prm_from_policy, prm_step_scores)
from ..rm_runs import relative_to
from ..runs import seed_everything
from ..training import resume_checkpoint
from .accelerator import release_accelerator_memory
from .finish import DONE
from .fit import PROBE_PAIRS, reward_training_args
from .process_data import ProcessData, examples_file
from .screening import screen_pairs, screen_records
from .world import RMData

log = logging.getLogger(__name__)
WORKER = "gcrm_kit.rm_training.worker"


def fit_process_model(p: RMTrainingParams, policy_dir: Path, examples: list[StepwiseExample], separator: str,
                      spec: RewardModelSpec, rm_seed: int, out_dir: Path) -> Path:
    """Train one process reward model on `examples` into `out_dir` (resuming from its checkpoints if any); the main
    process saves the checkpoint with its tokenizer, training log, encoding counts, rm_spec.json and the per-step
    scores of the first PROBE_PAIRS examples as the trained model gives them (scores_at_save.json, checked against
    the saved checkpoint by `finish_process_model`). Runs the same in every process of a launched run."""
    t = p.training
    args = reward_training_args(p, out_dir, rm_seed)
    seed_everything(rm_seed)
    scale = p.model.backbone or p.lora.enabled or p.quant.load_in_4bit or p.model != ModelParams()
    model, tokenizer = prm_from_policy(policy_dir, separator, seed=rm_seed, **(
        dict(model_params=p.model, lora=p.lora, quant=p.quant) if scale else {}))
    encoded, counts = encode_examples(tokenizer, examples, separator, t.max_length)
    if not encoded:
        raise RuntimeError(f"no stepwise examples left after encoding: {counts}")
    trainer = ProcessTrainer(model=model, args=args, train_dataset=encoded,
                             data_collator=StepwiseCollator(tokenizer.pad_token_id))
    trainer.train(resume_from_checkpoint=resume_checkpoint(args.output_dir, args.save_only_model))
    probe = [examples[e["index"]] for e in encoded[:PROBE_PAIRS]]  # examples training kept
    probe_scores = prm_step_scores(trainer.model_wrapped, tokenizer, [e.prompt for e in probe],
                                   [e.steps for e in probe], separator=separator)
    trainer.save_model(str(out_dir / "adapter") if p.lora.enabled else str(out_dir))
    if not trainer.is_world_process_zero():
        return out_dir
    if p.lora.enabled:
        tokenizer.save_pretrained(out_dir / "adapter")
        merge_prm_adapter(out_dir / "adapter", out_dir, policy_dir, separator, p.model, p.quant)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(out_dir / "scores_at_save.json", {"prompts": [e.prompt for e in probe],
                                                        "steps": [e.steps for e in probe],
                                                        "scores": [s.tolist() for s in probe_scores]})
    atomic_write_json(out_dir / "training_log.json", to_jsonable(trainer.state.log_history))
    atomic_write_json(out_dir / "encoding.json", counts)
    atomic_write_json(out_dir / "rm_spec.json", {**to_dict(spec), "rm_seed": rm_seed, "n_examples": len(examples),
                                                 "step_separator": separator, "process": to_dict(p.process),
                                                 "training": to_dict(t), "policy_dir": str(policy_dir),
                                                 "policy_dir_relative": relative_to(policy_dir, out_dir),
                                                 "model": to_dict(p.model), "lora": to_dict(p.lora),
                                                 "quant": to_dict(p.quant), "distributed": to_dict(p.distributed)})
    normal_permissions(out_dir)
    (out_dir / "SAVED").write_text("saved\n")
    return out_dir


def finish_process_model(p: RMTrainingParams, out_dir: Path, tolerance: float | None = None) -> dict:
    """Load the saved PRM with plain `transformers` on `resolve_device(p.device)`, score the probe examples again
    and compare with scores_at_save.json (tolerance 1e-4 in float32, 5e-2 for bf16 or 4-bit training), write
    checkpoint_check.json, drop the training checkpoints and mark the folder DONE. Returns the check."""
    saved = json.loads((out_dir / "scores_at_save.json").read_text())
    if tolerance is None:
        tolerance = 5e-2 if p.model.dtype != "float32" or p.quant.load_in_4bit else 1e-4
    model, tok = load_prm(out_dir)
    model.to(resolve_device(p.device))
    again = prm_step_scores(model, tok, saved["prompts"], saved["steps"])
    del model
    release_accelerator_memory()
    diff = max((float(np.abs(a - np.asarray(b)).max()) for a, b in zip(again, saved["scores"])), default=0.0)
    out = {"max_abs_diff": diff, "n": len(again), "tolerance": tolerance, "ok": diff <= tolerance}
    atomic_write_json(out_dir / "checkpoint_check.json", out)
    if not out["ok"]:
        log.warning("%s: step scores from the saved checkpoint differ from the trained model's by %.3g (> %.3g)",
                    out_dir, diff, tolerance)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    (out_dir / DONE).write_text("trained\n")
    return out


def train_one_process_model(p: RMTrainingParams, world: RMData, data: ProcessData, spec: RewardModelSpec,
                            rm_seed: int, out_dir: Path, n_pairs: int | None = None) -> Path:
    """Train (or resume, or return as is when DONE) one process reward model on the examples of the first `n_pairs`
    training pairs (all for None), in this process or, with `distributed.n_processes` > 1, through the launcher."""
    if (out_dir / DONE).is_file():
        return out_dir
    examples = data.for_pairs(n_pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "SAVED").is_file():
        if p.distributed.n_processes > 1:
            launch_dir = out_dir / "launch"
            params_file = atomic_write_text(launch_dir / "params.yaml", dump_yaml(p))
            ex_file = examples_file(launch_dir / "train_examples.jsonl", examples)
            job = write_job(launch_dir / "fit_process_model.json", WORKER, "fit_process_model",
                            params_file=params_file, examples_file=ex_file, policy_dir=str(world.policy_dir),
                            separator=data.separator, spec=to_dict(spec), rm_seed=rm_seed,
                            out_dir=str(out_dir.resolve()))
            release_accelerator_memory()
            run_launched(job, p.distributed.n_processes, p.distributed.launcher)
        else:
            fit_process_model(p, world.policy_dir, examples, data.separator, spec, rm_seed, out_dir)
    finish_process_model(p, out_dir)
    return out_dir


def solution_score(step_scores: np.ndarray) -> float:
    """A solution's score from its per-step probabilities: the lowest (Math-Shepherd's choice: a solution is as
    good as its weakest step)."""
    return float(np.min(step_scores))


def evaluate_process_model(model_dir: Path, world: RMData, batch_size: int = 256,
                           device: str | torch.device = "cpu") -> dict:
    """A process reward model as a user would load it (plain `transformers`): held-out pairwise accuracy and per
    split AUROC for final correctness of the solution score (`solution_score`, the lowest step probability;
    `auroc`) and of the last step's probability alone (`auroc_last_step`), on what the outcome models are scored
    on (same screening, by training.max_length). Writes eval_scores.json (per split, each record's step
    probabilities, null for a record left out). Returns the row fields, shaped like `evaluate_reward_model`'s."""
    spec = json.loads((Path(model_dir) / "rm_spec.json").read_text())
    max_length = spec.get("training", {}).get("max_length")
    model, tok = load_prm(model_dir)
    model.to(device)
    _, held, held_skips = screen_pairs(tok, world.heldout_pairs, max_length)
    prompts = [x.prompt for x in held]
    rc = [solution_score(s) for s in prm_step_scores(model, tok, prompts, [x.chosen for x in held], batch_size)]
    rr = [solution_score(s) for s in prm_step_scores(model, tok, prompts, [x.rejected for x in held], batch_size)]
    out = {"pairwise_accuracy": evaluation.pairwise_accuracy(rc, rr), "auroc": {},
           "auroc_last_step": {}, "skipped": {"heldout": dict(held_skips.skipped), "eval": {}}}
    scores = {}
    for split, all_recs in world.eval_records.items():
        recs, idx, rep = screen_records(tok, all_recs, max_length)
        out["skipped"]["eval"][split] = dict(rep.skipped)
        steps = prm_step_scores(model, tok, [r.prompt for r in recs], [r.response for r in recs], batch_size)
        correct = [r.is_correct for r in recs]
        out["auroc"][split] = evaluation.auroc([solution_score(s) for s in steps], correct)
        out["auroc_last_step"][split] = evaluation.auroc([float(s[-1]) for s in steps], correct)
        aligned = [None] * len(all_recs)
        for i, s in zip(idx, steps):
            aligned[i] = s.tolist()
        scores[split] = aligned
    atomic_write_json(Path(model_dir) / "eval_scores.json", scores)
    del model
    release_accelerator_memory()
    return out
