"""Stage of notebook 01_rm_training: the toy world, preference pairs, reward-model training and evaluation.

Each step is a function the notebook calls in turn (so a reading group sees the steps), and
`train_reward_models(p)` runs them all for headless use. Order of every training body: seed, data, tokenizer,
model, trainer, train, save.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, TrainingArguments

from . import evaluation, plots
from .best_of_n import measure as measure_best_of_n
from .data import (GenerationRecord, PairCollator, PreferencePair, SkipReport, check_tokenizer, encode, encode_pairs,
                   load_jsonl, save_jsonl)
from .launch import deepspeed_config_path, run_launched, write_job
from .memory import estimate_memory
from .models import frozen_policy, load_reward_model, merge_adapter, reward_model_from_policy, score, set_pad_token
from .params import ModelParams, RMTrainingParams, RewardModelSpec, dump_yaml, to_dict
from .qvalues import build_prototype
from .runs import Run, cached, seed_everything, start_run
from .io import atomic_write_json, atomic_write_text, to_jsonable
from .toyworld.corpus import VERDICT_NO, VERDICT_YES
from .toyworld.policy import choose_policy
from .toyworld.sampling import cached_samples
from .rm_runs import relative_to, reward_model_dir_in
from .training import RewardTrainer, attach_lm_head, detach_lm_head, resume_checkpoint

log = logging.getLogger(__name__)
DONE = "DONE"


def build_pairs(records: list[GenerationRecord], seed: int, exclude_prompts: set[str] = frozenset()
                ) -> tuple[list[PreferencePair], dict]:
    """One (correct, incorrect) pair per question that has both among its samples, as the paper pairs
    OpenMathInstruct-1 solutions. Questions whose prompt is in `exclude_prompts` (evaluation questions) are left
    out. Returns the pairs and counts of questions by outcome."""
    rng = np.random.default_rng([seed, 3])
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    pairs, stats = [], {"questions": len(by_q), "all_correct": 0, "all_incorrect": 0, "excluded": 0, "paired": 0}
    for prompt, rs in by_q.items():
        if prompt in exclude_prompts:
            stats["excluded"] += 1
            continue
        good = sorted({r.response for r in rs if r.is_correct})
        bad = sorted({r.response for r in rs if not r.is_correct})
        if not good:
            stats["all_incorrect"] += 1
        elif not bad:
            stats["all_correct"] += 1
        else:
            pairs.append(PreferencePair(prompt, good[rng.integers(len(good))], bad[rng.integers(len(bad))],
                                        meta={"split": rs[0].meta.get("split")}))
            stats["paired"] += 1
    return pairs, stats


def split_heldout(pairs: list[PreferencePair], fraction: float, seed: int
                  ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Shuffle and split pairs into (train, held-out)."""
    order = np.random.default_rng([seed, 4]).permutation(len(pairs))
    n_held = max(1, int(round(fraction * len(pairs))))
    held = [pairs[i] for i in order[:n_held]]
    train = [pairs[i] for i in order[n_held:]]
    return train, held


# ------------------------------------------------------------------------------------------------ valid inputs
#
# Training keeps a pair only when `data.encode_pairs` does: both sides non-empty, chosen != rejected, and neither
# side longer than training.max_length tokens. The same rules apply to everything that is scored afterwards
# (held-out pairs, evaluation records, the prototype's pairs), so nothing is scored that training would refuse
# and nothing raises a bare "empty response" after hours of training. Everything left out is counted by reason.


def screen_pairs(tokenizer, pairs: list[PreferencePair], max_length: int | None
                 ) -> tuple[list[dict], list[PreferencePair], SkipReport]:
    """`encode_pairs`'s rules, pair by pair: (encodings of the kept pairs, the kept pairs, counts by reason).
    `max_length` None checks no length. The encodings equal what `encode_pairs` gives for the kept pairs."""
    check_tokenizer(tokenizer)
    limit = max_length if max_length is not None else float("inf")
    report, enc, kept = SkipReport(), [], []
    for pair in pairs:
        e, r = encode_pairs(tokenizer, [pair], limit)
        report.kept += r.kept
        report.skipped.update(r.skipped)
        if e:
            enc.append(e[0])
            kept.append(pair)
    return enc, kept, report


def screen_records(tokenizer, records: list[GenerationRecord], max_length: int | None
                   ) -> tuple[list[GenerationRecord], list[int], SkipReport]:
    """Evaluation records that can be scored as training scores a pair's side: a non-empty response, and the
    sequence no longer than `max_length` tokens (None: any length). Returns (kept records, their indices in
    `records`, counts by reason; the reasons are worded as `encode_pairs` words them)."""
    report, kept, idx = SkipReport(), [], []
    for i, r in enumerate(records):
        if not r.response:
            report.skipped["empty response"] += 1
            continue
        if max_length is not None and len(encode(tokenizer, r.prompt, r.response).input_ids) > max_length:
            report.skipped[f"longer than max_length={max_length}"] += 1
            continue
        kept.append(r)
        idx.append(i)
        report.kept += 1
    return kept, idx, report


def screening_tokenizer(p: RMTrainingParams, policy_dir: str | Path):
    """The tokenizer reward models of `p` train with: the policy's, with the pad token `reward_model_from_policy`
    gives it (only a tokenizer without one distinct from EOS changes, unless model.pad_token names one)."""
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    set_pad_token(tokenizer, p.model.pad_token)
    return tokenizer


def screen_world(world: "ToyWorld", tokenizer, max_length: int, source: dict | None = None) -> "ToyWorld":
    """`world` with only the pairs and records the reward models can be trained and scored on (see
    `screen_pairs`, `screen_records`). The counts go to `world.pair_stats["skipped"]`: {"source": rows an adapter
    left out, per data set (`source`), "train"/"heldout": {reason: n}, "eval": {split: {reason: n}}}; the pair
    counts in pair_stats become the kept ones. The policy's accuracy stays that of all its samples."""
    _, train, s_train = screen_pairs(tokenizer, world.train_pairs, max_length)
    _, held, s_held = screen_pairs(tokenizer, world.heldout_pairs, max_length)
    evals, s_eval = {}, {}
    for split, recs in world.eval_records.items():
        evals[split], _, rep = screen_records(tokenizer, recs, max_length)
        s_eval[split] = dict(rep.skipped)
    skipped = {"source": dict(source or {}), "train": dict(s_train.skipped), "heldout": dict(s_held.skipped),
               "eval": s_eval}
    if not train:
        raise RuntimeError(f"no training pairs are left after leaving out invalid ones: {skipped}")
    stats = {**world.pair_stats, "skipped": skipped}
    if "train_pairs" in stats:
        stats.update(train_pairs=len(train), heldout_pairs=len(held))
    if any(_total(v) for v in (skipped["train"], skipped["heldout"], skipped["eval"], skipped["source"])):
        log.warning("left out of the world: %s", describe_skips(skipped))
    return replace(world, train_pairs=train, heldout_pairs=held, eval_records=evals, pair_stats=stats)


def _total(counts: dict) -> int:
    """Sum of a possibly nested {reason: n} / {split: {reason: n}} dict."""
    return sum(_total(v) if isinstance(v, dict) else int(v) for v in counts.values())


def describe_skips(skipped: dict) -> str:
    """One line per part of the data with anything left out, by reason; "nothing left out" when all is kept."""
    lines = []
    for part in ("source", "train", "heldout", "eval"):
        v = skipped.get(part) or {}
        groups = v.items() if part in ("eval", "source") else [(None, v)]
        for sub, counts in groups:
            if _total(counts):
                name = part if sub is None else f"{part} {sub}"
                lines.append(f"{name}: {_total(counts)} left out (" +
                             ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) + ")")
    return "\n".join(lines) if lines else "nothing left out"


def merge_skips(*parts: dict) -> dict:
    """Add skip-count dicts shaped like `screen_world`'s, key by key."""
    out: dict = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, dict):
                out[k] = merge_skips(out.get(k, {}), v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def release_accelerator_memory() -> None:
    """Collect unreferenced models (reference cycles included) and hand the CUDA allocator's cached blocks back,
    so launched training processes find the GPU memory this process used for generation and scoring free."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ the world


@dataclass
class ToyWorld:
    """What notebook 01 builds before any reward model: the policy, labelled samples and pairs."""

    policy_dir: Path
    eval_records: dict[str, list[GenerationRecord]]
    train_pairs: list[PreferencePair]
    heldout_pairs: list[PreferencePair]
    pair_stats: dict
    policy_accuracy: dict[str, float] = field(default_factory=dict)
    policy_attempts: list[dict] = field(default_factory=list)
    """toy world: every policy trained, with its verdict check (toyworld.policy.choose_policy)"""


def build_toy_world(p: RMTrainingParams, run: Run) -> ToyWorld:
    """Train (or reuse) the policy, sample evaluation and pair data, build pairs. Writes policy_accuracy.json and
    pairs files into the run folder."""
    cache = run.cache_root
    choice = choose_policy(p.world, p.policy, p.seed, cache)
    policy_dir = choice.policy_dir
    eval_records = {s: cached_samples(p, cache, policy_dir, s, "eval") for s in p.evaluation.splits}
    pair_records = cached_samples(p, cache, policy_dir, "id", "pairs")
    exclude = {r.prompt for recs in eval_records.values() for r in recs}
    pairs, stats = build_pairs(pair_records, p.seed, exclude)
    if len(pairs) < 2:
        raise RuntimeError(f"only {len(pairs)} preference pairs could be built ({stats}); sample more questions "
                           "(pairs.n_questions) or more solutions per question")
    train, held = split_heldout(pairs, p.pairs.heldout_fraction, p.seed)
    acc = {s: float(np.mean([r.is_correct for r in recs])) for s, recs in eval_records.items()}
    acc["pairs_samples_id"] = float(np.mean([r.is_correct for r in pair_records]))
    stats.update(train_pairs=len(train), heldout_pairs=len(held))
    world = ToyWorld(policy_dir, eval_records, train, held, stats, acc, choice.attempts)
    return save_world(run, screen_world(world, screening_tokenizer(p, policy_dir), p.training.max_length))


def save_world(run: Run, world: ToyWorld) -> ToyWorld:
    """Write what a world is made of into the run folder (policy_accuracy.json, pair_stats.json, data/train_pairs,
    heldout_pairs and eval_<split>.jsonl: what later notebooks score, kept with the run that scored it).
    Returns `world`."""
    run.write_json("policy_accuracy.json", world.policy_accuracy)
    if world.policy_attempts:
        run.write_json("policy_attempts.json", world.policy_attempts)
    run.write_json("pair_stats.json", world.pair_stats)
    save_jsonl(world.train_pairs, run.path("data", "train_pairs.jsonl"))
    save_jsonl(world.heldout_pairs, run.path("data", "heldout_pairs.jsonl"))
    for split, recs in world.eval_records.items():
        save_jsonl(recs, run.path("data", f"eval_{split}.jsonl"))
    return world


def build_world(p: RMTrainingParams, run: Run) -> ToyWorld:
    """The data notebook 01 trains and evaluates on: the toy world (`data.kind: toy`) or real datasets."""
    return build_toy_world(p, run) if p.data.kind == "toy" else build_real_world(p, run)


def build_real_world(p: RMTrainingParams, run: Run) -> ToyWorld:
    """Real data through the adapters of `gcrm_kit.real_data`: training pairs from `data.train`, held-out pairs from
    `data.test` (or `pairs.heldout_fraction` of the training pairs), and per evaluation set generation records
    with correctness (benchmark problems are answered greedily by the backbone first, cached). Prompts use the
    tokenizer's chat template when it has one (`data.chat_template`). Writes the same files as the toy world."""
    from . import real_data

    d = p.data
    # the pad token reward models get (model.pad_token): greedy answering pads its batches with it
    tokenizer = screening_tokenizer(p, p.model.backbone)
    raw = real_data.load_adapted(d.train, "pairs")
    source = {"train": _source_skips(raw, d.train.adapter)}
    pairs = real_data.apply_chat_template(raw, tokenizer, d.chat_template)
    if d.test.adapter:
        train = pairs
        raw = real_data.load_adapted(d.test, "pairs")
        source["test"] = _source_skips(raw, d.test.adapter)
        held = real_data.apply_chat_template(raw, tokenizer, d.chat_template)
    else:
        train, held = split_heldout(pairs, p.pairs.heldout_fraction, p.seed)
    eval_records = {}
    for name, spec in d.eval_sets.items():
        kind = real_data.ADAPTERS[spec.adapter].kind if spec.adapter in real_data.ADAPTERS else None
        if kind == "problems":
            key = {"artifact": "benchmark_answers", "version": 1, "model": p.model.backbone,
                   "spec": to_dict(spec), "max_new_tokens": d.max_new_tokens, "chat_template": d.chat_template}

            def build(tmp: Path, spec=spec) -> None:
                problems = real_data.load_adapted(spec, "problems")
                save_jsonl(real_data.answer_problems(problems, p.model.backbone, tokenizer, d.max_new_tokens,
                                                     chat_template=d.chat_template), tmp / "records.jsonl")
                release_accelerator_memory()  # the answering model, on the GPU when there is one

            recs = load_jsonl(cached(run.cache_root, "samples", key, build) / "records.jsonl", GenerationRecord)
        else:
            recs = real_data.apply_chat_template(real_data.load_adapted(spec, "records"), tokenizer, d.chat_template)
        eval_records[name] = recs
    stats = {"train_pairs": len(train), "heldout_pairs": len(held), "source": d.train.source}
    acc = {name: float(np.mean([r.is_correct for r in recs])) for name, recs in eval_records.items()}
    world = ToyWorld(Path(p.model.backbone), eval_records, train, held, stats, acc)
    return save_world(run, screen_world(world, tokenizer, p.training.max_length,
                                        {k: v for k, v in source.items() if v}))


def _source_skips(items: list, adapter: str) -> dict:
    """Rows of a data set its adapter could not use (HH-RLHF: rows not splittable into prompt and responses), as
    {reason: n}. The count is read wherever the adapter left it: `skipped_rows` in the `stats` of the list it
    returned, or in an item's meta (older adapters put it on the first pair), where it is removed so it does not
    travel with that pair into a split's pairs file."""
    n = int((getattr(items, "stats", None) or {}).get("skipped_rows", 0) or 0)
    n += sum(int(it.meta.pop("skipped_rows", 0) or 0) for it in items)
    return {f"rows the {adapter} adapter could not use": n} if n else {}


# ------------------------------------------------------------------------------------------------ training


def reward_model_dir(run: Run, spec: RewardModelSpec, rm_seed: int, n_pairs: int | None = None) -> Path:
    return reward_model_dir_in(run.dir, spec, rm_seed, n_pairs)


def reward_training_args(p: RMTrainingParams, out_dir: Path, rm_seed: int) -> TrainingArguments:
    """TrainingArguments for one reward model. Scale options (bf16, gradient checkpointing, gradient accumulation,
    DeepSpeed) are added only when asked for, so the toy world's arguments stay the plain ones. Made before the
    model is loaded: under ZeRO-3 transformers then builds the model already partitioned."""
    t = p.training
    extra = {}
    if p.model.dtype == "bfloat16":
        extra["bf16"] = True
    if p.model.gradient_checkpointing:
        extra.update(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    if p.distributed.gradient_accumulation_steps != 1:
        extra["gradient_accumulation_steps"] = p.distributed.gradient_accumulation_steps
    ds = deepspeed_config_path(p.distributed.deepspeed)
    if ds is not None:
        extra["deepspeed"] = str(ds)
        extra.update(_cpu_deepspeed_state())
    elif _world_size() > 1 and not torch.cuda.is_available():
        extra.update(use_cpu=True, ddp_backend="gloo")  # data parallel over CPU processes (the tests' setting)
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=1,
        report_to="none",
        seed=rm_seed,
        data_seed=rm_seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        **extra,
    )


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _cpu_deepspeed_state() -> dict:
    """DeepSpeed on CPU processes (how the test suite runs ZeRO-3: gloo between CPU processes). accelerate sets up
    a DeepSpeed state only for accelerator devices, so on CPU the state is made here, with the gloo backend, and
    the Trainer is told to use it. On GPUs nothing is needed."""
    if torch.cuda.is_available() or _world_size() < 2:
        return {}
    import os

    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        PartialState(backend="gloo")
    finally:
        del os.environ["ACCELERATE_USE_DEEPSPEED"]
    return {"accelerator_config": {"use_configured_state": True}}


def _full_weight(param: torch.Tensor) -> torch.Tensor:
    """A parameter's full value on CPU, gathered first when DeepSpeed ZeRO-3 has partitioned it."""
    if hasattr(param, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([param]):
            return param.detach().contiguous().cpu().clone()
    return param.detach().contiguous().cpu()


PROBE_PAIRS = 4
"""training pairs scored inside the training processes right after saving, then again from the saved checkpoint
in one process: the two must agree (a ZeRO-3 save that lost weights would not)"""


def fit_reward_model(p: RMTrainingParams, policy_dir: Path, train_pairs: list[PreferencePair], spec: RewardModelSpec,
                     rm_seed: int, out_dir: Path) -> Path:
    """Train one reward model on `train_pairs` into `out_dir` (resuming from its checkpoints if any) and save it as
    a standard sequence-classification checkpoint with its tokenizer, training log and spec. Runs the same in the
    notebook's process and in every process of a launched run (only the main process writes).

    With LoRA the adapter (and the fully trained head) is saved in `out_dir/adapter` and merged into the base for
    the plain checkpoint in `out_dir`. Rewards of the first PROBE_PAIRS pairs, computed by the trained model before
    it is released, go to `rewards_at_save.json` for `finish_reward_model` to check the checkpoint against."""
    t = p.training
    args = reward_training_args(p, out_dir, rm_seed)
    seed_everything(rm_seed)
    scale = p.model.backbone or p.lora.enabled or p.quant.load_in_4bit or p.model != ModelParams()
    model, tokenizer = reward_model_from_policy(policy_dir, seed=rm_seed, **(
        dict(model_params=p.model, lora=p.lora, quant=p.quant) if scale else {}))
    reference = None
    if spec.grm_weight > 0:
        # GRM: the policy's LM head rides on the reward model's final states (frozen under LoRA, where the base
        # model stays untouched); the policy itself, frozen, is the DPO reference
        reference = frozen_policy(policy_dir, **(dict(model_params=p.model, quant=p.quant) if scale else {}))
        attach_lm_head(model, reference, trainable=not p.lora.enabled)
    train_enc, kept, skips = screen_pairs(tokenizer, train_pairs, t.max_length)
    if not train_enc:
        raise RuntimeError(f"no training pairs left after encoding: {skips.as_dict()}")
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_enc,
                            data_collator=PairCollator(tokenizer.pad_token_id),
                            contrastive=p.contrastive, spec=spec, reference=reference)
    trainer.train(resume_from_checkpoint=resume_checkpoint(args.output_dir, args.save_only_model))
    lm_head = detach_lm_head(model)
    if lm_head is not None:  # kept beside the checkpoint, not in it: scoring needs only the reward head
        weight = _full_weight(lm_head.weight)  # every process takes part in a ZeRO-3 gather
        if trainer.is_world_process_zero():
            out_dir.mkdir(parents=True, exist_ok=True)
            save_file({"weight": weight}, str(out_dir / "grm_lm_head.safetensors"))
    probe = kept[:PROBE_PAIRS]  # pairs that can be scored (an empty side cannot)
    probe_prompts = [x.prompt for x in probe] * 2
    probe_responses = [x.chosen for x in probe] + [x.rejected for x in probe]
    # every process takes part: under ZeRO-3 each forward gathers the partitioned weights from all of them
    probe_rewards = score(trainer.model_wrapped, tokenizer, probe_prompts, probe_responses, desc="probe")
    if p.lora.enabled:
        trainer.save_model(str(out_dir / "adapter"))
    else:
        trainer.save_model(str(out_dir))  # gathers ZeRO-3 partitions (stage3_gather_16bit_weights_on_model_save)
    if not trainer.is_world_process_zero():
        return out_dir
    if p.lora.enabled:
        tokenizer.save_pretrained(out_dir / "adapter")
        merge_adapter(out_dir / "adapter", out_dir, policy_dir, p.model, p.quant)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(out_dir / "rewards_at_save.json", {"prompts": probe_prompts, "responses": probe_responses,
                                                         "rewards": probe_rewards.tolist()})
    atomic_write_json(out_dir / "training_log.json", to_jsonable(trainer.state.log_history))
    atomic_write_json(out_dir / "encoding.json", skips.as_dict())
    atomic_write_json(out_dir / "rm_spec.json", {**to_dict(spec), "rm_seed": rm_seed, "n_train_pairs": len(train_pairs),
                                                 "contrastive": to_dict(p.contrastive),
                                                 "training": to_dict(t), "policy_dir": str(policy_dir),
                                                 "policy_dir_relative": relative_to(policy_dir, out_dir),
                                                 "model": to_dict(p.model), "lora": to_dict(p.lora),
                                                 "quant": to_dict(p.quant),
                                                 "distributed": to_dict(p.distributed)})
    (out_dir / "SAVED").write_text("saved\n")
    return out_dir


def check_saved_rewards(out_dir: Path, tolerance: float | None = None, device: str = "cpu") -> dict:
    """Load the checkpoint in `out_dir` with plain `transformers` in this one process, on `device`, and score the
    probe pairs of `rewards_at_save.json` again. Returns {"max_abs_diff", "n", "tolerance", "ok"}; writes
    checkpoint_check.json. The default tolerance is 1e-4 for float32 and 5e-2 for bf16 or 4-bit training (the
    merged 4-bit model is the dequantised base plus the adapter, which differs from the 4-bit kernels by
    rounding)."""
    saved = json.loads((out_dir / "rewards_at_save.json").read_text())
    spec = json.loads((out_dir / "rm_spec.json").read_text())
    if tolerance is None:
        low = spec.get("model", {}).get("dtype", "float32") != "float32" or spec.get("quant", {}).get("load_in_4bit")
        tolerance = 5e-2 if low else 1e-4
    model, tokenizer = load_reward_model(out_dir)
    model.to(device)
    again = score(model, tokenizer, saved["prompts"], saved["responses"], desc="probe")
    del model
    release_accelerator_memory()
    diff = float((again - torch.tensor(saved["rewards"])).abs().max()) if len(again) else 0.0
    out = {"max_abs_diff": diff, "n": len(again), "tolerance": tolerance, "ok": diff <= tolerance}
    atomic_write_json(out_dir / "checkpoint_check.json", out)
    if not out["ok"]:
        log.warning("%s: rewards from the saved checkpoint differ from the trained model's by %.3g (> %.3g)",
                    out_dir, diff, tolerance)
    return out


def finish_reward_model(p: RMTrainingParams, world: ToyWorld, out_dir: Path,
                        train_pairs: list[PreferencePair] | None = None) -> Path:
    """After `fit_reward_model` (in this process or a launched one): check the saved checkpoint against the trained
    model's rewards, build the `correct` prototype from it (chosen responses of the pairs of `train_pairs`, by
    default all of `world.train_pairs`, that the model was trained on: those `encode_pairs` keeps), drop the
    training checkpoints and mark it DONE. Both checks run on `eval_device(p)`."""
    train_pairs = world.train_pairs if train_pairs is None else train_pairs
    device = eval_device(p)
    check_saved_rewards(out_dir, device=device)
    model, tokenizer = load_reward_model(out_dir)
    model.to(device)
    _, trained, skips = screen_pairs(tokenizer, train_pairs, p.training.max_length)
    proto = build_prototype(model, tokenizer, [x.prompt for x in trained],
                            [x.chosen for x in trained], name="correct", pooling="last",
                            provenance={"checkpoint": str(out_dir), "data": "chosen responses of train_pairs.jsonl",
                                        "pairs_left_out": dict(skips.skipped)})
    proto.save(out_dir)
    del model
    release_accelerator_memory()
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    (out_dir / DONE).write_text("trained\n")
    return out_dir


def train_one_reward_model(p: RMTrainingParams, world: ToyWorld, spec: RewardModelSpec, rm_seed: int,
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
            job = write_job(launch_dir / "fit_reward_model.json", "fit_reward_model", params_file=params_file,
                            pairs_file=pairs_file, policy_dir=str(world.policy_dir), spec=to_dict(spec),
                            rm_seed=rm_seed, out_dir=str(out_dir.resolve()))
            release_accelerator_memory()  # models this process put on the GPU (answering, scoring, prototypes)
            run_launched(job, p.distributed.n_processes, p.distributed.launcher)
    elif not (out_dir / "SAVED").is_file():
        fit_reward_model(p, world.policy_dir, train_pairs, spec, rm_seed, out_dir)
    return finish_reward_model(p, world, out_dir, train_pairs)


def evaluate_reward_model(model_dir: Path, world: ToyWorld, batch_size: int = 256, device: str = "cpu",
                          max_length: int | None = None) -> dict:
    """Held-out pairwise accuracy and, per split, AUROC of the final reward for correctness; the model is loaded
    with plain `transformers` from `model_dir`, as a user would. Writes eval_scores.json beside it (per split, one
    reward per record of `world.eval_records`, null for a record left out).

    Only what training would accept is scored: held-out pairs by `encode_pairs`'s rules, records with a non-empty
    response, both no longer than `max_length` tokens (default: the model's training.max_length in rm_spec.json).
    A world from `build_world` is screened already; what is left out here is counted in the result's
    `skipped` ({"heldout": {reason: n}, "eval": {split: {reason: n}}})."""
    if max_length is None:
        spec_file = Path(model_dir) / "rm_spec.json"
        if spec_file.is_file():
            max_length = json.loads(spec_file.read_text()).get("training", {}).get("max_length")
    model, tokenizer = load_reward_model(model_dir)
    model.to(device)
    _, held, held_skips = screen_pairs(tokenizer, world.heldout_pairs, max_length)
    rc = score(model, tokenizer, [x.prompt for x in held], [x.chosen for x in held], batch_size)
    rr = score(model, tokenizer, [x.prompt for x in held], [x.rejected for x in held], batch_size)
    out = {"pairwise_accuracy": evaluation.pairwise_accuracy(rc, rr), "auroc": {},
           "skipped": {"heldout": dict(held_skips.skipped), "eval": {}}}
    scores = {}
    for split, all_recs in world.eval_records.items():
        recs, idx, rep = screen_records(tokenizer, all_recs, max_length)
        out["skipped"]["eval"][split] = dict(rep.skipped)
        s = score(model, tokenizer, [r.prompt for r in recs], [r.response for r in recs], batch_size,
                  desc=f"scoring {split}")
        out["auroc"][split] = evaluation.auroc(s.tolist(), [r.is_correct for r in recs])
        aligned = [None] * len(all_recs)
        for i, v in zip(idx, s.tolist()):
            aligned[i] = v
        scores[split] = aligned
    atomic_write_json(model_dir / "eval_scores.json", scores)
    del model
    release_accelerator_memory()
    return out


def eval_device(p: RMTrainingParams) -> str:
    """Where the notebook's own process scores: a GPU for real backbones when there is one; the toy world on CPU."""
    return "cuda" if p.model.backbone and torch.cuda.is_available() else "cpu"


@dataclass
class RMTrainingResult:
    """What notebook 01 produced: per-model metrics (one row per reward model and seed), the summary over
    seeds, and where everything is."""

    run_dir: Path
    world: ToyWorld
    rows: list[dict]
    summary: list[dict]
    model_dirs: dict[str, list[Path]]
    data_size_curve: list[dict] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    """everything left out, by reason (`skip_counts`)"""


def train_and_evaluate(p: RMTrainingParams, run: Run, world: ToyWorld) -> RMTrainingResult:
    """Train every reward model of `p.reward_models` for every seed of `p.rm_seeds` on the same pairs (and, for
    each count in `p.train_pair_counts`, on the first that many pairs), evaluate each, and write metrics.json
    (one row per model, seed and data size; a mean/std summary on all pairs; the data-size curve)."""
    rows, dirs = [], {}
    counts = sorted({n for n in p.train_pair_counts if n < len(world.train_pairs)})
    for n in counts + [None]:
        pairs = world.train_pairs if n is None else world.train_pairs[:n]
        pn = subset_params(p, len(pairs), len(world.train_pairs))
        for spec in p.reward_models:
            for rm_seed in p.rm_seeds:
                d = train_one_reward_model(pn, world, spec, rm_seed, reward_model_dir(run, spec, rm_seed, n), pairs)
                if n is None:
                    dirs.setdefault(spec.name, []).append(d)
                m = evaluate_reward_model(d, world, p.evaluation.batch_size, device=eval_device(p))
                rows.append({"reward_model": spec.name, "rm_seed": rm_seed, "n_train_pairs": len(pairs),
                             "all_pairs": n is None, **m,
                             "pairwise_p_above_chance": pairwise_p_above_chance(m.get("pairwise_accuracy"),
                                                                                len(world.heldout_pairs))})
    warn_chance_level(rows)
    full = [r for r in rows if r["all_pairs"]]
    summary = summarise(full, list(world.eval_records))
    curve = data_size_curve(rows, list(world.eval_records)) if counts else []
    skipped = skip_counts(world, [d for ds in dirs.values() for d in ds], full)
    result = RMTrainingResult(run.dir, world, rows, summary, dirs, curve, skipped)
    run.write_json("metrics.json", {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed,
                                    "policy_accuracy": world.policy_accuracy, "policy_attempts": world.policy_attempts,
                                    "pair_stats": world.pair_stats, "skipped": skipped, "rows": rows,
                                    "summary": summary, "data_size_curve": curve})
    return result


def pairwise_p_above_chance(accuracy: float | None, n_pairs: int) -> float | None:
    """One-sided binomial p-value of a held-out pairwise accuracy against chance (0.5) over `n_pairs` pairs; None
    without held-out pairs. A reward model that stays near chance learned nothing its mean over seeds should hide."""
    if accuracy is None or not n_pairs:
        return None
    from scipy.stats import binomtest

    return float(binomtest(int(round(accuracy * n_pairs)), n_pairs, 0.5, alternative="greater").pvalue)


def warn_chance_level(rows: list[dict], alpha: float = 0.01) -> list[dict]:
    """Print (and return) the rows whose held-out pairwise accuracy is not above chance at level `alpha`: such a
    seed did not learn to rank its pairs, and averages over seeds that include it mix two different outcomes."""
    flat = [r for r in rows if r.get("pairwise_p_above_chance") is not None and r["pairwise_p_above_chance"] >= alpha]
    for r in flat:
        print(f"[gcrm] warning: {r['reward_model']} seed {r['rm_seed']} ({r['n_train_pairs']} pairs) is not above "
              f"chance on held-out pairs: pairwise accuracy {r['pairwise_accuracy']:.3f} "
              f"(p = {r['pairwise_p_above_chance']:.2g})", flush=True)
    return flat


def skip_counts(world: ToyWorld, model_dirs: list[Path], rows: list[dict]) -> dict:
    """Everything left out of training and evaluation, by reason: what `screen_world` left out of the world
    (`world.pair_stats["skipped"]`, adapter rows under "source") plus what was still left out later, when
    encoding the training pairs (each model's encoding.json) or scoring (each row's `skipped`), taking the largest
    count over models (they see the same data). Shaped {"source": {set: {reason: n}}, "train": {reason: n},
    "heldout": {reason: n}, "eval": {split: {reason: n}}}; toy data leaves everything in."""
    base = world.pair_stats.get("skipped", {})
    later: dict = {"train": {}, "heldout": {}, "eval": {}}

    def take_max(into: dict, counts: dict) -> None:
        for k, v in counts.items():
            into[k] = max(into.get(k, 0), v)

    for d in model_dirs:
        f = Path(d) / "encoding.json"
        if f.is_file():
            take_max(later["train"], json.loads(f.read_text()).get("skipped", {}))
    for r in rows:
        s = r.get("skipped", {})
        take_max(later["heldout"], s.get("heldout", {}))
        for split, counts in s.get("eval", {}).items():
            take_max(later["eval"].setdefault(split, {}), counts)
    out = merge_skips({"source": {}, "train": {}, "heldout": {},
                       "eval": {s: {} for s in world.eval_records}}, base, later)
    return out


def subset_params(p: RMTrainingParams, n_pairs: int, n_all: int) -> RMTrainingParams:
    """The params a model trained on `n_pairs` of the `n_all` training pairs trains with: under
    `subset_schedule: same_steps` its epochs are scaled by n_all / n_pairs, so it takes as many optimiser steps
    as a model trained on all pairs; otherwise `p` itself."""
    if p.subset_schedule != "same_steps" or n_pairs >= n_all:
        return p
    return replace(p, training=replace(p.training, epochs=p.training.epochs * n_all / n_pairs))


def data_size_curve(rows: list[dict], splits: list[str]) -> list[dict]:
    """Per reward model and number of training pairs: mean/std over seeds of ID AUROC and of the mean AUROC over
    the out-of-distribution splits (every split but `id`)."""
    out = []
    ood = [s for s in splits if s != "id"]
    keys = dict.fromkeys((r["reward_model"], r["n_train_pairs"]) for r in rows)
    for name, n in keys:
        rs = [r for r in rows if r["reward_model"] == name and r["n_train_pairs"] == n]
        entry = {"reward_model": name, "n_train_pairs": n, "n_seeds": len(rs)}
        for label, vals in (("auroc_id", [r["auroc"].get("id", float("nan")) for r in rs]),
                            ("auroc_ood_mean", [float(np.nanmean([r["auroc"][s] for s in ood])) if ood
                                                else float("nan") for r in rs])):
            mean, std, _ = evaluation.mean_std(vals)
            entry[label] = {"mean": mean, "std": std}
        out.append(entry)
    return out


def summarise(rows: list[dict], splits: list[str]) -> list[dict]:
    """Mean and sample std over seeds of pairwise accuracy and AUROC per split, one entry per reward model."""
    out = []
    for name in dict.fromkeys(r["reward_model"] for r in rows):
        rs = [r for r in rows if r["reward_model"] == name]
        entry = {"reward_model": name, "n_seeds": len(rs)}
        mean, std, _ = evaluation.mean_std([r["pairwise_accuracy"] for r in rs])
        entry["pairwise_accuracy"] = {"mean": mean, "std": std}
        entry["auroc"] = {}
        for s in splits:
            mean, std, n = evaluation.mean_std([r["auroc"][s] for r in rs])
            entry["auroc"][s] = {"mean": mean, "std": std, "n": n}
        out.append(entry)
    return out


def save_figures(run: Run, result: RMTrainingResult) -> dict:
    """Training curves and the AUROC table as plotly figures, saved as HTML and JSON in run/figures/."""
    logs = {d.name: _read_log(d) for ds in result.model_dirs.values() for d in ds}
    figs = {
        "training_curves": plots.training_curves(logs),
        "auroc_by_split": plots.auroc_by_split(result.summary),
        "results_table": plots.results_table(result.summary),
    }
    if result.data_size_curve:
        figs["auroc_vs_pairs"] = plots.auroc_vs_pairs(result.data_size_curve)
    for name, fig in figs.items():
        plots.save_figure(fig, run.path("figures", name))
    return figs


def _read_log(d: Path) -> list[dict]:
    return json.loads((d / "training_log.json").read_text())


def train_reward_models(p: RMTrainingParams) -> RMTrainingResult:
    """Everything notebook 01 does, headless: start the run, build the world, train and evaluate, save figures,
    and the best-of-n curve when asked for."""
    run = start_run(p)
    world = build_world(p, run)
    result = train_and_evaluate(p, run, world)
    save_figures(run, result)
    measure_best_of_n(p, run, result)
    return result


def policy_verdict_table(world: ToyWorld, batch_size: int = 256):
    """Toy world only: AUROC of the policy's own verdict after the EOS (`toyworld.policy.verdict_scores`) for the
    correctness of each split's sampled solutions (pandas DataFrame; empty for a real-data world). Reward models
    start from the EOS state the verdict is read from: a policy near 0.5 here leaves them little to learn from
    (README, "Which policies learn the verdict": one policy seed gave 0.59 on `id`, another 0.93)."""
    import pandas as pd

    from .toyworld.policy import verdict_scores

    rows = []
    if world.policy_dir is not None and (Path(world.policy_dir) / "config.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(world.policy_dir)
        if all(tok.convert_tokens_to_ids(v) not in (None, tok.unk_token_id) for v in (VERDICT_YES, VERDICT_NO)):
            for split, recs in world.eval_records.items():
                labels = [r.is_correct for r in recs]
                if len(set(labels)) < 2:
                    continue
                sc = verdict_scores(world.policy_dir, [r.prompt for r in recs], [r.response for r in recs],
                                    batch_size)
                rows.append({"split": split, "policy verdict AUROC": evaluation.auroc(sc, labels), "n": len(recs)})
    return pd.DataFrame(rows, columns=["split", "policy verdict AUROC", "n"]).set_index("split")


def policy_attempts_table(world: ToyWorld):
    """Toy world: every policy trained for this run, its verdict check and which one was used (pandas DataFrame,
    one row per policy seed; empty for a real-data world)."""
    import pandas as pd

    rows = [{"policy seed": a["seed"], "verdict AUROC (fresh corpus-style id solutions)": a["verdict_auroc"],
             "accepted": a["accepted"], "used": a["used"]} for a in world.policy_attempts]
    return pd.DataFrame(rows, columns=["policy seed", "verdict AUROC (fresh corpus-style id solutions)", "accepted",
                                       "used"]).set_index("policy seed")


def policy_accuracy_table(world: ToyWorld):
    """Share of correct sampled solutions per split (pandas DataFrame)."""
    import pandas as pd

    rows = [{"split": k, "share correct": v, "n": len(world.eval_records.get(k, []))}
            for k, v in world.policy_accuracy.items()]
    # no evaluation sets (pairwise accuracy only, as paper_hh): an empty table with the same columns
    return pd.DataFrame(rows, columns=["split", "share correct", "n"]).set_index("split")


def results_table(result: RMTrainingResult):
    """Mean ± std over seeds of pairwise accuracy and AUROC per split, one row per reward model (DataFrame)."""
    import pandas as pd

    rows = []
    for e in result.summary:
        row = {"reward_model": e["reward_model"], "seeds": e["n_seeds"],
               "pairwise acc": f"{e['pairwise_accuracy']['mean']:.3f} ± {e['pairwise_accuracy']['std']:.3f}"}
        for s, v in e["auroc"].items():
            row[f"AUROC {s}"] = f"{v['mean']:.3f} ± {v['std']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("reward_model")


