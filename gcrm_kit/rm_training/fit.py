"""Training one reward model: the body that runs in the notebook's process, or in every process of a launched run
(`rm_training.worker`). Its order: training arguments (before the model, for ZeRO-3), seed, tokenizer and model,
data, trainer, train (resuming from the last checkpoint), save."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import TrainingArguments

from ..data import PairCollator, PreferencePair
from ..io import atomic_write_json, normal_permissions, to_jsonable
from ..launch import deepspeed_config_path
from ..models import frozen_policy, merge_adapter, reward_model_from_policy, score
from ..params import ModelParams, RMTrainingParams, RewardModelSpec, to_dict
from ..rm_runs import relative_to
from ..runs import seed_everything
from ..training import RewardTrainer, attach_lm_head, detach_lm_head, resume_checkpoint
from .screening import ScreenedPairs, screen_pairs

PROBE_PAIRS = 4
"""training pairs scored inside the training processes right after saving, then again from the saved checkpoint
in one process: the two must agree (a ZeRO-3 save that lost weights would not)"""


def reward_training_args(p: RMTrainingParams, out_dir: Path, rm_seed: int) -> TrainingArguments:
    """TrainingArguments for one reward model. Scale options (bf16, gradient checkpointing, gradient accumulation,
    DeepSpeed) and `torch.compile` are added only when asked for, so the toy world's arguments stay the plain ones. Made before the
    model is loaded: under ZeRO-3 transformers then builds the model already partitioned."""
    t = p.training
    extra = {}
    if p.model.dtype == "bfloat16":
        extra["bf16"] = True
    if p.model.gradient_checkpointing:
        extra.update(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    if t.torch_compile:
        extra["torch_compile"] = True
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
    return int(os.environ.get("WORLD_SIZE", "1"))


def _cpu_deepspeed_state() -> dict:
    """DeepSpeed on CPU processes (how the test suite runs ZeRO-3: gloo between CPU processes). accelerate sets up
    a DeepSpeed state only for accelerator devices, so on CPU the state is made here, with the gloo backend, and
    the Trainer is told to use it. On GPUs nothing is needed."""
    if torch.cuda.is_available() or _world_size() < 2:
        return {}
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


def fit_reward_model(p: RMTrainingParams, policy_dir: Path, train_pairs: list[PreferencePair], spec: RewardModelSpec,
                     rm_seed: int, out_dir: Path, screened: ScreenedPairs | None = None) -> Path:
    """Train one reward model on `train_pairs` into `out_dir` (resuming from its checkpoints if any) and save it as
    a standard sequence-classification checkpoint with its tokenizer, training log and spec. Runs the same in the
    notebook's process and in every process of a launched run (only the main process writes).

    With LoRA the adapter (and the fully trained head) is saved in `out_dir/adapter` and merged into the base for
    the plain checkpoint in `out_dir`. Rewards of the first PROBE_PAIRS pairs, computed by the trained model before
    it is released, go to `rewards_at_save.json` for `finish_reward_model` to check the checkpoint against.
    `screened` (the world's screened training pairs) spares encoding `train_pairs` again when it holds them."""
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
    train_enc, kept, skips = screen_pairs(tokenizer, train_pairs, t.max_length, screened)
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
    normal_permissions(out_dir)  # safetensors writes the GRM head 0600, like Trainer's weights
    (out_dir / "SAVED").write_text("saved\n")
    return out_dir
