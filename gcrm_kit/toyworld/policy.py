"""The toy world's policy: a tiny Llama trained from scratch on the base corpus with `transformers.Trainer`.

The result is a standard HF checkpoint folder (config, weights, tokenizer) that `AutoModelForCausalLM` and
`AutoTokenizer` load; reward models are initialised from it, as the paper initialises its RM from the generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

from ..data import Encoded, LMCollator, encode, pad_ids
from ..evaluation import auroc
from ..params import PolicyParams, WorldParams, to_dict
from ..params.world import world_key
from ..io import atomic_write_json, normal_permissions, to_jsonable
from ..runs import cached, seed_everything
from .shipped import copy_shipped, find_shipped, ship
from ..training import OpenPermissions, resume_checkpoint
from .corpus import VERDICT_NO, VERDICT_YES, SlipModel, build_corpus, noisy_solution
from .problems import SPLITS, sample_problem
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
    return build_corpus(rng, mixture, world.corpus_size, slips, world.correction_mark_rate, world.verdict_rate,
                        world.correction_mark_style, world.misconception_rates,
                        world.misconception_min_count)


def corpus_example(tokenizer, prompt: str, solution: str, verdict: str) -> Encoded:
    """BOS + prompt + solution + EOS [+ verdict]: the verdict token follows the EOS and is trained on like the
    response (see toyworld.corpus)."""
    enc = encode(tokenizer, prompt, solution)
    if verdict:
        enc.input_ids = enc.input_ids + [tokenizer.convert_tokens_to_ids(verdict)]
    return enc


class VerdictWeightedLoss:
    """Causal-LM cross-entropy where the token right after an EOS (the verdict, see toyworld.corpus) counts
    `weight` times. Normalised by the number of target tokens, so every other token keeps the plain loss's scale.

    Passed to `Trainer(compute_loss_func=...)`: called with the model outputs, the labels (B, T) with -100 on prompt
    and padding, and the number of target tokens in the whole accumulated batch (or None).
    """

    def __init__(self, eos_id: int, weight: float):
        self.eos_id, self.weight = eos_id, weight

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs.logits[:, :-1].float()
        targets, previous = labels[:, 1:], labels[:, :-1]
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                               ignore_index=-100, reduction="none").view_as(targets)
        counted = (targets != -100).to(ce.dtype)
        weights = counted + (self.weight - 1.0) * counted * (previous == self.eos_id).to(ce.dtype)
        denominator = num_items_in_batch if num_items_in_batch is not None else counted.sum().clamp(min=1)
        return (ce * weights).sum() / denominator


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
    loss = None if policy.verdict_loss_weight == 1.0 else VerdictWeightedLoss(tokenizer.eos_token_id,
                                                                              policy.verdict_loss_weight)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=LMCollator(tokenizer.pad_token_id),
                      compute_loss_func=loss, callbacks=[OpenPermissions()])
    trainer.train(resume_from_checkpoint=resume_checkpoint(args.output_dir, args.save_only_model))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    normal_permissions(out_dir)
    atomic_write_json(out_dir / "training_log.json", to_jsonable(trainer.state.log_history))
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return out_dir


#: PolicyParams fields that decide which trained policy is used, not how one is trained (left out of its cache key)
_ACCEPTANCE_FIELDS = ("min_verdict_auroc", "max_attempts", "shipped")


def policy_cache_key(world: WorldParams, policy: PolicyParams, seed: int) -> dict:
    trained = {k: v for k, v in to_dict(policy).items() if k not in _ACCEPTANCE_FIELDS}
    return {"artifact": "toy_policy", "version": 2, "world": world_key(world), "policy": trained, "seed": seed}


def get_policy(world: WorldParams, policy: PolicyParams, seed: int, cache_root: Path) -> Path:
    """The policy checkpoint folder for these params and seed, trained now, copied from a shipped policy of the same
    key (toyworld.shipped; then the folder also holds `source.json`), or reused from the cache. The folder also
    holds `verdict_check.json` (see verdict_check)."""
    key = policy_cache_key(world, policy, seed)
    shipped = find_shipped(key) if policy.shipped else None

    def build(d: Path) -> None:
        if shipped is not None:  # the same policy, trained once by `gcrm ship-policy` (toyworld.shipped)
            copy_shipped(shipped, d)
            log.info("policy seed %d: the shipped policy %s (policy.shipped: false trains it instead)", seed,
                     shipped.name)
            return
        if not (d / "training_log.json").is_file():  # else trained before an interruption: only the check is left
            train_policy(world, policy, seed, d)
        atomic_write_json(d / "verdict_check.json", {"seed": seed, "verdict_auroc": verdict_check(d, world, seed)})

    return cached(cache_root, "policy", key, build)


def policy_source(policy_dir: Path) -> str:
    """`shipped` when the cached policy was copied from the kit's shipped one (toyworld.shipped), else `trained`."""
    return "shipped" if (policy_dir / "source.json").is_file() else "trained"


def verdict_check(policy_dir: str | Path, world: WorldParams, seed: int, n: int = 1000) -> float:
    """AUROC of the policy's own verdict (verdict_scores) for the correctness of `n` fresh `id` solutions written
    the corpus's way (same slips and misconceptions, no marks), from a random stream the corpus and the samples never
    use.

    It measures what a reward model initialised from this policy will find in the EOS state, without sampling and
    without touching any evaluation data. On the toy default it tracks the AUROC on the policy's own sampled `id`
    solutions closely (0.586 vs 0.585, 0.934 vs 0.929, 0.82 vs 0.86, 0.59 vs 0.57 for four policies).
    """
    rng = np.random.default_rng([seed, 2])
    slips = SlipModel(world.step_error_rate, world.operand_slip_share)
    prompts, responses, labels = [], [], []
    for _ in range(n):
        problem = sample_problem(rng, SPLITS["id"])
        text, correct, _ = noisy_solution(problem, rng, slips, misconception_rates=world.misconception_rates,
                                          misconception_min_count=world.misconception_min_count)
        prompts.append(problem.prompt)
        responses.append(text)
        labels.append(correct)
    if len(set(labels)) < 2:
        raise ValueError(f"verdict_check: all {n} solutions are {'right' if labels[0] else 'wrong'} with "
                         f"world.step_error_rate={world.step_error_rate}; no AUROC can be computed")
    return auroc(verdict_scores(policy_dir, prompts, responses), labels)


@dataclass
class PolicyChoice:
    """The policy a toy world uses: its folder and seed, and every policy tried before it.

    attempts: one dict per policy tried, {"seed", "verdict_auroc" (None when unchecked), "accepted", "used",
    "source" (`trained` or `shipped`)}.
    """

    policy_dir: Path
    seed: int
    attempts: list[dict]


def choose_policy(world: WorldParams, policy: PolicyParams, seed: int, cache_root: Path) -> PolicyChoice:
    """Train (or reuse) policies with seeds `seed`, `seed + 1`, ... until one passes the verdict check
    (`policy.min_verdict_auroc`), at most `policy.max_attempts` of them; if none does, go on with the best one and
    log a warning.

    Why: whether a policy learns its verdict is close to all or nothing and depends on the seed (docs/toy_world.md, "Which
    policies learn the verdict"), and reward models initialised from one that did not stay near chance. A real
    reward model is likewise started from a pretrained checkpoint known to be good, not from any run.
    """
    if policy.min_verdict_auroc <= 0:
        d = get_policy(world, policy, seed, cache_root)
        return PolicyChoice(d, seed, [{"seed": seed, "verdict_auroc": None, "accepted": True, "used": True,
                                       "source": policy_source(d)}])
    attempts, dirs = [], {}
    for k in range(max(1, policy.max_attempts)):
        s = seed + k
        dirs[s] = get_policy(world, policy, s, cache_root)
        score = json.loads((dirs[s] / "verdict_check.json").read_text())["verdict_auroc"]
        attempts.append({"seed": s, "verdict_auroc": score, "accepted": score >= policy.min_verdict_auroc,
                         "used": False, "source": policy_source(dirs[s])})
        log.info("policy seed %d: verdict AUROC %.3f (accepted at >= %.2f)", s, score, policy.min_verdict_auroc)
        if attempts[-1]["accepted"]:
            attempts[-1]["used"] = True
            return PolicyChoice(dirs[s], s, attempts)
    best = max(attempts, key=lambda a: a["verdict_auroc"])
    best["used"] = True
    log.warning("no policy of seeds %s learned its verdict (AUROC >= %.2f; best %.3f, seed %d): going on with the "
                "best; expect reward models near chance", [a["seed"] for a in attempts], policy.min_verdict_auroc,
                best["verdict_auroc"], best["seed"])
    return PolicyChoice(dirs[best["seed"]], best["seed"], attempts)


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


def corpus_sha256(world: WorldParams, seed: int) -> str:
    """sha256 of the base corpus `world` and `seed` make (make_corpus), as JSON: what a shipped policy records."""
    return hashlib.sha256(json.dumps(make_corpus(world, seed)).encode()).hexdigest()


def ship_policy(world: WorldParams, policy: PolicyParams, seed: int, cache_root: Path, built_by: str) -> Path:
    """Choose the policy notebook 01 would use for these params (training it, or taking it from `cache_root`, never
    from an earlier shipped copy) and ship it (toyworld.shipped.ship). Returns the shipped folder."""
    own = dataclasses.replace(policy, shipped=False)
    choice = choose_policy(world, own, seed, cache_root)
    return ship(choice.policy_dir, policy_cache_key(world, policy, choice.seed), corpus_sha256(world, choice.seed),
                built_by)
