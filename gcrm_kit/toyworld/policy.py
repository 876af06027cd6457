"""The toy world's policy: a tiny Llama trained from scratch on the base corpus with `transformers.Trainer`.

The result is a standard HF checkpoint folder (config, weights, tokenizer) that `AutoModelForCausalLM` and
`AutoTokenizer` load; reward models are initialised from it, as the paper initialises its RM from the generator.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..data import Encoded, LMCollator, encode, pad_ids
from ..params import PolicyParams, WorldParams
from ..runs import atomic_write_json, cached, seed_everything, to_jsonable
from .corpus import VERDICT_NO, VERDICT_YES, SlipModel, build_corpus
from .problems import SPLITS
from .tokenizer import build_tokenizer

log = logging.getLogger(__name__)


def llama_config(p: PolicyParams, tokenizer) -> LlamaConfig:
    """A small Llama config sized by `p`, with the tokenizer's special ids (pad distinct from EOS)."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_heads,
        max_position_embeddings=p.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def make_corpus(world: WorldParams, seed: int) -> list[tuple[str, str, str]]:
    """The base corpus for `world` and `seed`: (prompt, solution-with-marks, verdict) examples."""
    rng = np.random.default_rng([seed, 1])
    mixture = [(SPLITS[name], w) for name, w in world.corpus_mixture.items()]
    slips = SlipModel(world.step_error_rate, world.operand_slip_share)
    return build_corpus(rng, mixture, world.corpus_size, slips, world.correction_mark_rate, world.verdict_rate)


def corpus_example(tokenizer, prompt: str, solution: str, verdict: str) -> Encoded:
    """BOS + prompt + solution + EOS [+ verdict]: the verdict token follows the EOS and is trained on like the
    response (see toyworld.corpus)."""
    enc = encode(tokenizer, prompt, solution)
    if verdict:
        enc.input_ids = enc.input_ids + [tokenizer.convert_tokens_to_ids(verdict)]
    return enc


def train_policy(world: WorldParams, policy: PolicyParams, seed: int, out_dir: Path) -> Path:
    """Train the policy into `out_dir` (resuming from a checkpoint there if a previous attempt was cut off).

    Returns `out_dir`, which then holds the final model, tokenizer and `training_log.json`.
    """
    seed_everything(seed)
    tokenizer = build_tokenizer()
    corpus = make_corpus(world, seed)
    examples = [corpus_example(tokenizer, q, s, v) for q, s, v in corpus]
    too_long = sum(len(e.input_ids) > policy.max_position_embeddings for e in examples)
    if too_long:
        raise ValueError(f"{too_long} corpus examples exceed policy.max_position_embeddings="
                         f"{policy.max_position_embeddings}; raise it")
    model = LlamaForCausalLM(llama_config(policy, tokenizer))
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=policy.epochs,
        per_device_train_batch_size=policy.batch_size,
        learning_rate=policy.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=policy.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=policy.weight_decay,
        max_grad_norm=policy.max_grad_norm,
        logging_steps=25,
        save_strategy="steps",
        save_steps=200,
        save_total_limit=1,
        report_to="none",
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=LMCollator(tokenizer.pad_token_id))
    last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(out_dir / "training_log.json", to_jsonable(trainer.state.log_history))
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return out_dir


def policy_cache_key(world: WorldParams, policy: PolicyParams, seed: int) -> dict:
    from ..params import to_dict

    return {"artifact": "toy_policy", "version": 2, "world": to_dict(world), "policy": to_dict(policy), "seed": seed}


def get_policy(world: WorldParams, policy: PolicyParams, seed: int, cache_root: Path) -> Path:
    """The policy checkpoint folder for these params, trained now or reused from the cache."""
    key = policy_cache_key(world, policy, seed)
    return cached(cache_root, "policy", key, lambda d: train_policy(world, policy, seed, d))


@torch.no_grad()
def verdict_scores(policy_dir: str | Path, prompts: list[str], responses: list[str], batch_size: int = 256
                   ) -> np.ndarray:
    """The base model's own judgement of finished solutions: logit(Y) - logit(N) for the verdict token it predicts
    right after each solution's EOS (the corpus writes the verdict there; see toyworld.corpus). Returns (n,).

    Reward models read the EOS state, so this says how much of the judgement the design relies on a policy has
    learned: a policy whose verdict does not separate right from wrong solutions gives reward models little to read.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    yes, no = tokenizer.convert_tokens_to_ids(VERDICT_YES), tokenizer.convert_tokens_to_ids(VERDICT_NO)
    out = []
    for start in range(0, len(prompts), batch_size):
        enc = [encode(tokenizer, q, r).input_ids for q, r in zip(prompts[start:start + batch_size],
                                                                 responses[start:start + batch_size])]
        ids, att = pad_ids(enc, tokenizer.pad_token_id, side="right")
        logits = model(input_ids=ids, attention_mask=att).logits  # (B, T, V)
        last = att.sum(-1) - 1  # the EOS of each row
        at_eos = logits[torch.arange(len(enc)), last]
        out.append((at_eos[:, yes] - at_eos[:, no]).float().numpy())
    return np.concatenate(out) if out else np.zeros(0)
