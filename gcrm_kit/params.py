"""Params dataclasses, one per notebook, built from small shared pieces; strict YAML loading.

Each notebook has one params class (its docstring names the notebook). Its fields are mirrored by the
notebook's papermill parameters cell and by the YAML files in ``params/<notebook>/``. A YAML file is a short
diff over the dataclass defaults; nested sections may be given in part. Unknown keys and wrong types are
errors that name the file and the key, raised before anything runs (papermill itself only warns).

Building params does no I/O; `start_run` makes the run folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml


class ParamsError(ValueError):
    """Invalid params; the message names the source file (if any) and the dotted key."""


# ---------------------------------------------------------------------------------------------------------------
# shared pieces


@dataclass
class WorldParams:
    """The toy world: how the base model's corpus is made (see gcrm_kit.toyworld)."""

    corpus_size: int = 30000
    """number of (question, solution) examples the base policy is trained on"""
    corpus_mixture: dict[str, float] = field(default_factory=lambda: {
        "id": 0.4, "short_chain": 0.1, "long_chain": 0.2, "new_operator": 0.15, "verbal": 0.15})
    """weights of the problem distributions in the base corpus (names from toyworld.SPLITS): the base model
    knows every split; reward models are trained on `id` alone"""
    step_error_rate: float = 0.12
    """probability that a corpus solution's step is wrong"""
    operand_slip_share: float = 0.25
    """share of wrong steps that copy a wrong operand (the rest write a wrong result)"""
    correction_mark_rate: float = 0.5
    """share of erroneous corpus solutions whose wrong steps carry the correction mark '!'"""
    correction_mark_style: Literal["step", "state"] = "step"
    """which steps carry the mark: `step`, those whose own computation is wrong; `state`, every step after which
    the running value is wrong (the first wrong step and the ones carrying its error on)"""
    verdict_rate: float = 0.5
    """share of corpus solutions followed by a verdict '|Y' / '|N'"""


@dataclass
class PolicyParams:
    """The tiny Llama policy (also the reward models' initialisation) and its supervised fine-tuning."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 128
    epochs: float = 3.0
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    verdict_loss_weight: float = 1.0
    """weight of the verdict token (the one after the EOS) in the language-modelling loss, relative to every
    other token's 1 (10 did not make the verdict learnt more often: README, "Which policies learn the verdict")"""
    min_verdict_auroc: float = 0.8
    """accept a trained policy only if its own verdict after the EOS tells right from wrong on fresh corpus-style
    `id` solutions with at least this AUROC (toyworld.policy.verdict_check); 0 accepts the first policy unchecked"""
    max_attempts: int = 3
    """policies tried (seeds seed, seed + 1, ...) before going on with the best one and a warning"""


@dataclass
class PairsParams:
    """How preference pairs are sampled: N solutions per question, one (correct, incorrect) pair per question
    that has both, as the paper pairs OpenMathInstruct-1 solutions."""

    n_questions: int = 4000
    samples_per_question: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 64
    heldout_fraction: float = 0.1
    """share of pairs held out for pairwise accuracy"""
    batch_size: int = 256
    """generation batch size"""


@dataclass
class ContrastiveParams:
    """The goal-conditioned contrastive term (PAPER.md section 3). Its weight is set per reward model."""

    n_positive: int = 16
    """S: (source, later goal) draws in the preferred response"""
    n_negative: int = 16
    """U: source states in the preferred response, and as many negative goals in the dispreferred one"""
    variant: Literal["cosine", "cosine_avg"] = "cosine"
    """`cosine`: mean of sigmoid(cos) over all source-goal pairs; `cosine_avg`: goals averaged first"""
    source_range: tuple[float, float] = (0.0, 1.0)
    """where sources are drawn, as fractions of the response from its start"""
    goal_range: tuple[float, float] = (0.0, 1.0)
    """where goals are drawn; must not start or end before source_range, so goals never precede sources"""


@dataclass
class RewardModelSpec:
    """One reward model to train: a name and its objective,
    (1 - grm_weight) * BT + contrastive_weight * contrastive + grm_weight * GRM regulariser.

    With grm_weight = 0 this is the paper's BT + lambda * contrastive; with contrastive_weight = 0 it is GRM's
    (1 - alpha) * BT + alpha * L_reg (Yang et al., NeurIPS 2024)."""

    name: str = "baseline"
    contrastive_weight: float = 0.0
    """lambda of the goal-conditioned contrastive term (0: none)"""
    grm_weight: float = 0.0
    """alpha of GRM's text-generation regulariser (0: none; GRM uses about 0.01)"""
    grm_regulariser: Literal["sft", "dpo", "dpo_noref"] = "sft"
    """`sft`: next-token loss on the chosen response; `dpo`: DPO against the frozen policy; `dpo_noref`: DPO
    without a reference"""
    grm_beta: float = 0.1
    """beta of the DPO regularisers"""


@dataclass
class RewardTrainingParams:
    """Reward-model optimisation, shared by every reward model of a run (same data, same seeds)."""

    epochs: float = 2.0
    """two passes: with one (90 steps on the toy pairs) one reward-model seed in three never took off"""
    batch_size: int = 32
    """pairs per step (2x sequences)"""
    learning_rate: float = 3e-4
    """chosen on the toy world by the baseline's held-out pairwise accuracy (README, "Choosing the defaults")"""
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 128
    """longest sequence in tokens; longer pairs are skipped and counted"""
    logging_steps: int = 10
    save_steps: int = 100
    """checkpoint interval, for resuming"""


@dataclass
class EvaluationParams:
    """Sampled solutions per split scored by every reward model (AUROC for correctness)."""

    splits: list[str] = field(default_factory=lambda: ["id", "short_chain", "long_chain", "new_operator", "verbal"])
    n_questions: int = 500
    """questions per split, one sampled solution each"""
    temperature: float = 1.0
    batch_size: int = 256
    best_of_n: list[int] = field(default_factory=list)
    """the n of the best-of-n curve (each reward model picks the highest-reward of n samples; the verifier checks
    the pick); empty: not measured. Toy world only (it needs the verifier)"""
    best_of_n_questions: int = 300
    """questions of the best-of-n curve, max(best_of_n) samples each (those among the training pairs are left out)"""
    best_of_n_split: str = "id"
    """toy-world split of the best-of-n questions"""


@dataclass
class ModelParams:
    """The reward model's backbone and how it is loaded. The defaults are the toy world's: its own tiny policy, in
    float32 with the default attention."""

    backbone: str = ""
    """empty: the toy world's policy (trained by notebook 01); otherwise a hub id or a local folder of a causal LM
    checkpoint (the paper initialises its reward model from the generator)"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """weights and compute: `bfloat16` trains in bf16 mixed precision (the paper's setting)"""
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """`auto`: flash-attention 2 when it is importable and a GPU is present, else the model's default attention;
    `flash_attention_2` falls back the same way, with one message saying so"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, about a third more compute)"""
    pad_token: str = ""
    """for a tokenizer without a pad token: an existing token (not EOS) to pad with; empty: its unk token"""


@dataclass
class LoraParams:
    """Low-rank adapters (peft) on the backbone; the scalar `score` head is always trained in full and saved with
    the adapter (peft `modules_to_save`)."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


@dataclass
class QuantParams:
    """4-bit loading of the backbone (bitsandbytes; QLoRA when combined with LoRA). The score head stays unquantised."""

    load_in_4bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["float32", "bfloat16"] = "bfloat16"


@dataclass
class DistributedParams:
    """How many processes train, and through which launcher. One process trains inside the notebook; more run the
    same stage code under the launcher as a subprocess whose log streams into the notebook."""

    n_processes: int = 1
    """processes (GPUs) per node"""
    launcher: Literal["torchrun", "deepspeed"] = "torchrun"
    deepspeed: str = ""
    """a DeepSpeed config: a name in params/deepspeed/ (`zero2`, `zero3`, `zero3_offload`) or a JSON path; empty:
    no DeepSpeed (plain data parallel when n_processes > 1)"""
    gradient_accumulation_steps: int = 1
    """global batch = training.batch_size x n_processes x gradient_accumulation_steps pairs"""


@dataclass
class DatasetSpec:
    """One dataset read through Hugging Face `datasets` and an adapter into the kit's schema (gcrm_kit.real_data)."""

    adapter: str = ""
    """how records are read: see `real_data.ADAPTERS` (e.g. openmathinstruct, hh_rlhf, gsm8k, math, records)"""
    source: str = ""
    """a hub dataset id, or a local file or folder (JSON lines, optionally gzipped, JSON, Parquet or CSV)"""
    config: str = ""
    """the hub dataset's configuration name, if it has several"""
    split: str = "train"
    limit: int = 0
    """use only the first `limit` records (0: all)"""


@dataclass
class DataParams:
    """Where the preference pairs and evaluation sets come from: the toy world, or real datasets."""

    kind: Literal["toy", "real"] = "toy"
    train: DatasetSpec = field(default_factory=DatasetSpec)
    """preference pairs to train on (real data)"""
    test: DatasetSpec = field(default_factory=DatasetSpec)
    """held-out preference pairs for pairwise accuracy; no adapter: `pairs.heldout_fraction` of the train pairs"""
    eval_sets: dict[str, DatasetSpec] = field(default_factory=dict)
    """named evaluation sets for AUROC: generation records with correctness, or benchmark questions with reference
    answers that the backbone then answers greedily (checked against the references)"""
    chat_template: Literal["auto", "never"] = "auto"
    """`auto`: render prompts with the tokenizer's chat template when it has one"""
    max_new_tokens: int = 512
    """greedy generation length for benchmark questions"""


# ---------------------------------------------------------------------------------------------------------------
# one class per notebook


@dataclass
class RMTrainingParams:
    """Params of notebook 01_rm_training: build the toy world, train baseline and goal-conditioned reward
    models on the same pairs and seeds, evaluate them in and out of distribution."""

    notebook: ClassVar[str] = "01_rm_training"

    params_name: str = "default"
    """name of the params file this run came from (the run's output folder); set by `load_params`"""
    seed: int = 0
    """seeds the world, the policy and the pair sampling"""
    rm_seeds: list[int] = field(default_factory=lambda: [0])
    """every reward model is trained once per seed here (initialisation of the head, contrastive draws, order)"""
    output_root: str = "outputs"
    run_dir: str = ""
    """an existing run folder of this notebook to work in (`gcrm run` prepares one; give an interrupted run's
    folder to resume it, same params); empty: a new run folder"""
    world: WorldParams = field(default_factory=WorldParams)
    policy: PolicyParams = field(default_factory=PolicyParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    contrastive: ContrastiveParams = field(default_factory=ContrastiveParams)
    reward_models: list[RewardModelSpec] = field(default_factory=lambda: [
        RewardModelSpec("baseline", 0.0), RewardModelSpec("goal_conditioned", 0.5)])
    train_pair_counts: list[int] = field(default_factory=list)
    """also train every reward model on the first N training pairs for each N here (nested subsets, same for
    every model) to trace AUROC against the amount of preference data; empty: all pairs only"""
    subset_schedule: Literal["same_steps", "same_epochs"] = "same_steps"
    """how long a model trained on a subset of `train_pair_counts` trains: `same_steps` as many optimiser steps as
    on all pairs (epochs scaled by all/N: scarce data seen many times, where regularisers should matter);
    `same_epochs` the epochs of `training` (fewer steps: small subsets stay near their initialisation)"""
    training: RewardTrainingParams = field(default_factory=RewardTrainingParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    model: ModelParams = field(default_factory=ModelParams)
    lora: LoraParams = field(default_factory=LoraParams)
    quant: QuantParams = field(default_factory=QuantParams)
    distributed: DistributedParams = field(default_factory=DistributedParams)
    data: DataParams = field(default_factory=DataParams)

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:
        from .toyworld.problems import SPLITS

        c = self.contrastive
        for key, (lo, hi) in (("contrastive.source_range", c.source_range), ("contrastive.goal_range", c.goal_range)):
            if not 0.0 <= lo <= hi <= 1.0:
                raise ParamsError(f"{key}: need 0 <= low <= high <= 1, got {[lo, hi]}")
        if c.goal_range[0] < c.source_range[0] or c.goal_range[1] < c.source_range[1]:
            raise ParamsError("contrastive.goal_range must not start or end before contrastive.source_range "
                              f"(goals follow sources), got source {list(c.source_range)} goal {list(c.goal_range)}")
        for key in ("n_positive", "n_negative"):
            if getattr(c, key) < 1:
                raise ParamsError(f"contrastive.{key} must be >= 1")
        names = [r.name for r in self.reward_models]
        if not names or len(set(names)) != len(names):
            raise ParamsError(f"reward_models: need at least one, with distinct names, got {names}")
        e = self.evaluation
        if e.best_of_n and (min(e.best_of_n) < 1 or e.best_of_n_questions < 1):
            raise ParamsError(f"evaluation.best_of_n: need n >= 1 and best_of_n_questions >= 1, got {e.best_of_n}")
        if e.best_of_n and self.data.kind != "toy":
            raise ParamsError("evaluation.best_of_n: the best-of-n curve needs the toy world's verifier; "
                              "leave it empty with data.kind: real")
        for name in list(self.world.corpus_mixture) + list(self.evaluation.splits) + [e.best_of_n_split]:
            if name not in SPLITS:
                raise ParamsError(f"unknown split {name!r}; known: {sorted(SPLITS)}")
        if not self.rm_seeds:
            raise ParamsError("rm_seeds: need at least one seed")
        for i, r in enumerate(self.reward_models):
            if not 0.0 <= r.grm_weight < 1.0:
                raise ParamsError(f"reward_models[{i}].grm_weight must be in [0, 1), got {r.grm_weight}")
            if r.contrastive_weight < 0:
                raise ParamsError(f"reward_models[{i}].contrastive_weight must be >= 0")
        if any(n < 2 for n in self.train_pair_counts):
            raise ParamsError(f"train_pair_counts: each count must be >= 2, got {self.train_pair_counts}")
        if not 0.0 < self.pairs.heldout_fraction < 1.0:
            raise ParamsError("pairs.heldout_fraction must be in (0, 1)")
        if self.policy.max_attempts < 1 or not 0.0 <= self.policy.min_verdict_auroc <= 1.0:
            raise ParamsError("policy.max_attempts must be >= 1 and policy.min_verdict_auroc in [0, 1], got "
                              f"{self.policy.max_attempts} and {self.policy.min_verdict_auroc}")
        validate_scale(self)


def validate_scale(p) -> None:
    """Checks of the shared scale pieces (model, lora, quant, distributed, data) of a notebook's params `p`."""
    if p.distributed.n_processes < 1 or p.distributed.gradient_accumulation_steps < 1:
        raise ParamsError("distributed.n_processes and distributed.gradient_accumulation_steps must be >= 1")
    if p.quant.load_in_4bit and not p.lora.enabled:
        raise ParamsError("quant.load_in_4bit needs lora.enabled: 4-bit weights are frozen, only adapters train")
    if p.quant.load_in_4bit and p.distributed.deepspeed:
        raise ParamsError("quant.load_in_4bit does not combine with distributed.deepspeed here; use one GPU "
                          "(single_gpu.yaml) or drop the 4-bit loading")
    if p.lora.enabled and (p.lora.r < 1 or not p.lora.target_modules):
        raise ParamsError("lora: need r >= 1 and at least one target module")
    if p.data.kind == "toy":
        if p.model.backbone:
            raise ParamsError("model.backbone is for real data (data.kind: real); the toy world trains its own")
        if p.data.train.adapter or p.data.test.adapter or p.data.eval_sets:
            raise ParamsError("data.train/test/eval_sets are read only with data.kind: real")
    else:
        if not p.model.backbone:
            raise ParamsError("data.kind real needs model.backbone (a hub id or a local checkpoint folder)")
        if not p.data.train.adapter or not p.data.train.source:
            raise ParamsError("data.kind real needs data.train.adapter and data.train.source")
        from .real_data import ADAPTERS

        specs = {"data.train": p.data.train, "data.test": p.data.test,
                 **{f"data.eval_sets.{k}": v for k, v in p.data.eval_sets.items()}}
        for key, spec in specs.items():
            if spec.adapter and spec.adapter not in ADAPTERS:
                raise ParamsError(f"{key}.adapter: unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}")
            if spec.adapter and not spec.source:
                raise ParamsError(f"{key}.source: empty; give a hub dataset id or a local file")


@dataclass
class PrototypeSpec:
    """One goal prototype to build for every reward model: the mean pooled state over one side of the reward
    models' training pairs."""

    name: str = "correct"
    responses: Literal["chosen", "rejected"] = "chosen"
    """which responses of the training pairs: `chosen` (the correct ones) or `rejected` (the incorrect ones)"""
    pooling: Literal["last", "mean", "random"] = "last"
    """`last`: the EOS state (the released code's prototype); `mean`: over the response; `random`: one response
    token per sequence (the paper's ablation)"""


@dataclass
class ProjectionParams:
    """2-D maps of token states."""

    methods: list[Literal["pca", "tsne", "umap"]] = field(default_factory=lambda: ["pca", "tsne"])
    """`pca` and `tsne` from scikit-learn; `umap` only when umap-learn is installed (skipped with a note if not)"""
    n_sequences: int = 120
    """sequences whose response-token states are projected (balanced correct/incorrect where possible)"""
    perplexity: float = 30.0
    """t-SNE perplexity (lowered automatically for very few points)"""


@dataclass
class RepresentationParams:
    """Params of notebook 02_representation_analysis: per-token Q-values of the reward models of a notebook-01
    run, their prototypes, partial-sequence AUROC, Q-value curves against the first wrong step, Q-value/reward
    correlations and 2-D maps of token states."""

    notebook: ClassVar[str] = "02_representation_analysis"

    params_name: str = "default"
    """name of the params file this run came from (the run's output folder); set by `load_params`"""
    seed: int = 0
    """seeds the choice of samples, the bootstrap, random-token pooling and the projections"""
    output_root: str = "outputs"
    run_dir: str = ""
    """an existing run folder of this notebook to work in (`gcrm run` prepares one); empty: a new run folder"""
    rm_run: str = ""
    """a finished 01_rm_training run folder whose reward models are analysed; empty: the newest one made with
    params/01_rm_training/<rm_params>.yaml under output_root, trained now if there is none"""
    rm_params: str = "toy"
    """the notebook-01 params name used when rm_run is empty"""
    reward_models: list[str] = field(default_factory=list)
    """names of the reward models to analyse; empty: all of the run's"""
    rm_seeds: list[int] = field(default_factory=list)
    """reward-model seeds to analyse; empty: all of the run's"""
    prototypes: list[PrototypeSpec] = field(default_factory=lambda: [
        PrototypeSpec("correct", "chosen", "last"), PrototypeSpec("incorrect", "rejected", "last"),
        PrototypeSpec("correct_mean", "chosen", "mean"), PrototypeSpec("correct_random", "chosen", "random")])
    q_prototype: str = "correct"
    """the prototype whose cosine is the Q-value in the curves, AUROC, localisation and correlation analyses"""
    split: str = "id"
    """which evaluation split of the notebook-01 run to analyse (a toy-world split, or a name of its
    `data.eval_sets` for real data)"""
    n_samples: int = 500
    """sampled solutions analysed (drawn with `seed` from the run's evaluation samples); 0: all of them"""
    fractions: list[float] = field(default_factory=lambda: [round(0.1 * k, 1) for k in range(11)])
    """shares of the response read before scoring, for the partial-sequence AUROC"""
    correlation_fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    """where the Q-value is correlated with the final reward (the paper's Table 13)"""
    n_bootstrap: int = 1000
    """bootstrap resamples of the samples for 95% intervals"""
    localisation_window: tuple[int, int] = (0, 5)
    """a largest drop counts as locating the error when it falls this many tokens from the first wrong step's
    first token (inclusive): (0, 5) covers a toy step `v+d=r;`"""
    n_examples: int = 4
    """solutions shown as Q-value curves and shaded text (half incorrect, half correct)"""
    projection: ProjectionParams = field(default_factory=ProjectionParams)
    batch_size: int = 128
    """sequences per forward pass"""

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:
        names = [s.name for s in self.prototypes]
        if not names or len(set(names)) != len(names):
            raise ParamsError(f"prototypes: need at least one, with distinct names, got {names}")
        if self.q_prototype not in names:
            raise ParamsError(f"q_prototype {self.q_prototype!r} is not one of prototypes {names}")
        if not self.split:
            raise ParamsError("split: name the evaluation split (toy world) or evaluation set (real data)")
        for key in ("fractions", "correlation_fractions"):
            vals = getattr(self, key)
            if not vals or any(not 0.0 <= f <= 1.0 for f in vals):
                raise ParamsError(f"{key}: need at least one value, each in [0, 1], got {vals}")
        if self.n_samples < 0:
            raise ParamsError("n_samples must be >= 0 (0: all samples)")
        if self.n_bootstrap < 1:
            raise ParamsError("n_bootstrap must be >= 1")
        lo, hi = self.localisation_window
        if lo > hi:
            raise ParamsError(f"localisation_window: need low <= high, got {[lo, hi]}")
        if self.n_examples < 0 or self.projection.n_sequences < 1 or self.batch_size < 1:
            raise ParamsError("n_examples must be >= 0; projection.n_sequences and batch_size >= 1")
        if self.projection.perplexity <= 0:
            raise ParamsError("projection.perplexity must be > 0")


@dataclass
class OnlineParams:
    """Online pruning: samples are stopped while they are being generated, and the real cost is measured."""

    enabled: bool = True
    """run online pruning on the test questions (needs the policy and the toy world's verifier: a toy-world
    notebook-01 run, no `generations`)"""
    chunk_size: int = 8
    """tokens generated per `generate` call between two reward-model reads; a pruned sample wastes at most this
    many tokens, and smaller chunks cost more calls"""
    batch_size: int = 256
    """rows generated together; pruned and finished rows leave the batch between chunks"""
    repeats: int = 3
    """timed repetitions of every online run (the fastest is reported, all are kept; runs are interleaved across
    methods)"""


@dataclass
class FilteringParams:
    """Params of notebook 03_filtering: filtering during majority voting with Q-values (PAPER.md section 4),
    offline as in the paper and online (samples stopped while being generated), against baselines on the same
    samples; the threshold is chosen on validation questions and reported on test questions."""

    notebook: ClassVar[str] = "03_filtering"

    params_name: str = "default"
    """name of the params file this run came from (the run's output folder); set by `load_params`"""
    seed: int = 0
    """seeds the questions, the sampled solutions (per sample, see generation.PerSampleGumbel) and random pruning"""
    output_root: str = "outputs"
    run_dir: str = ""
    """an existing run folder of this notebook to work in (`gcrm run` prepares one); empty: a new run folder"""
    rm_run: str = ""
    """a finished 01_rm_training run folder (absolute, or relative to the project root); empty: the newest run
    made with params/01_rm_training/<rm_params>.yaml under the same output_root, trained now if there is none"""
    rm_params: str = "toy"
    """params name of notebook 01 used when `rm_run` is empty"""
    goal_rm: str = "goal_conditioned"
    """reward model (name in the 01 run) whose Q-values do the filtering"""
    baseline_rm: str = "baseline"
    """preference-only reward model of the same run, for the baselines"""
    generations: str = ""
    """a JSONL file of generation records (data.GenerationRecord: prompt, response, is_correct, answer), several
    per prompt, to filter instead of sampling the toy world; online pruning is then skipped"""
    split: str = "id"
    """where the questions are drawn from: a toy-world split (toyworld.SPLITS), or, for a real-data notebook-01
    run, one of its evaluation sets with reference answers (e.g. `gsm8k`)"""
    n_validation_questions: int = 300
    """questions on which each method's threshold is chosen"""
    n_test_questions: int = 300
    """questions on which everything is reported (0 with `generations`: every question not used for validation)"""
    samples_per_question: int = 8
    """N: solutions sampled per question and voted over. On the toy policy (63% of single samples right) the
    vote is right for 85% of questions with 4 samples, 96% with 8 and 99.7% with 16: at 16 there is nothing left
    for any filter to keep or lose"""
    temperature: float = 1.0
    max_new_tokens: int = 64
    skip_tokens: int = 5
    """k: the first k response tokens never prune (their Q-values are noisy), as in the released code"""
    threshold_quantiles: list[float] = field(default_factory=lambda: [
        0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    """the threshold grid, per method: quantiles of the per-sample minimum score (after k tokens) on the
    validation samples, so quantile q prunes about a share q of validation samples whatever the score's scale"""
    paper_threshold: float = 0.0
    """the threshold of the released runs, reported for the Q-value methods as is"""
    max_accuracy_drop: float = 0.0
    """a threshold is eligible when its validation vote accuracy is at most this below the unfiltered vote's;
    the eligible one saving the most tokens is chosen (0: "at equal accuracy", the paper's claim)"""
    tie_break: Literal["random", "loss", "favour_correct"] = "random"
    """a tie for the most votes: `random` scores the expected accuracy of picking one of the tied answers
    uniformly (1/k when one of k is right), `loss` counts it wrong, `favour_correct` counts it right as the
    released code does (it overstates accuracy)"""
    all_pruned: Literal["abstain", "unfiltered"] = "abstain"
    """a question whose samples are all pruned: `abstain` gives no answer (wrong); `unfiltered` votes over all
    its samples as the released code does, and then counts every one of their tokens as generated"""
    random_repeats: int = 20
    """draws of random pruning averaged at each budget"""
    batch_size: int = 256
    """sampling and scoring batch size"""
    online: OnlineParams = field(default_factory=OnlineParams)

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:
        if not self.split:
            raise ParamsError("split: name a toy-world split, or an evaluation set of a real-data notebook-01 run")
        if self.samples_per_question < 1:
            raise ParamsError("samples_per_question must be >= 1")
        if self.n_validation_questions < 1 or self.n_test_questions < 0:
            raise ParamsError("n_validation_questions must be >= 1 and n_test_questions >= 0")
        if not self.generations and self.n_test_questions < 1:
            raise ParamsError("n_test_questions must be >= 1 when sampling the policy")
        if not self.threshold_quantiles or any(not 0.0 <= q <= 1.0 for q in self.threshold_quantiles):
            raise ParamsError(f"threshold_quantiles: need values in [0, 1], got {self.threshold_quantiles}")
        if self.skip_tokens < 0 or self.max_accuracy_drop < 0 or self.random_repeats < 1:
            raise ParamsError("skip_tokens and max_accuracy_drop must be >= 0, random_repeats >= 1")
        if self.online.chunk_size < 1 or self.online.batch_size < 1 or self.online.repeats < 1:
            raise ParamsError("online.chunk_size, online.batch_size and online.repeats must be >= 1")
        if self.goal_rm == self.baseline_rm:
            raise ParamsError("goal_rm and baseline_rm must name different reward models")


# --- notebook 04_steering ---------------------------------------------------------------------------------------


@dataclass
class AttributePrototype:
    """A goal prototype built from labelled examples: the mean final state of the labelled responses whose
    attribute `attribute` (a scorer of the judge, e.g. toyworld.attributes) equals `value`."""

    name: str = "correct"
    attribute: str = "correct"
    value: bool = True


@dataclass
class SteeringTarget:
    """One goal to steer towards: weights of prototypes by name (negative: steer away from that prototype), and
    the attribute the goal aims to raise (what the comparison reports its gain on)."""

    name: str = "correct"
    weights: dict[str, float] = field(default_factory=lambda: {"correct": 1.0})
    aim: str = "correct"


@dataclass
class BeamParams:
    """Step-level beam search (gcrm_kit.steering): candidates per beam, beam size, what a step is, how the goal
    term and the policy's probability are combined."""

    n_candidates: int = 2
    """n: steps sampled per live beam at every step (the paper: 2)"""
    beam_size: int = 5
    """beams kept per question (the paper: 5)"""
    max_step_tokens: int = 8
    """longest step in tokens (a toy step 'v+d=r;' is 6)"""
    max_steps: int = 10
    """steps per solution before the beam is stopped"""
    temperature: float = 1.0
    """sampling temperature of candidate steps (and of the plain-sampling and best-of-N baselines). The paper uses
    0.2-0.5; the toy policy is always right below about 0.7, so the toy default samples at 1"""
    confidence_ratio: float = 0.0
    """rho: the goal term's weight is r = 2^rho / (2^rho + 1) in s = c^r p^(1-r) (0: equal weight)"""
    beam_temperature: float = 0.0
    """0: keep the best beams; > 0: draw them with probabilities proportional to score^(1/temperature)"""
    beam_temperature_decay: float = 1.0
    """the beam temperature at step t is beam_temperature * decay^t"""
    step_end: str = ";"
    """what ends a step: the toy world's ';', a newline for free text (the paper keeps the first line of a sample)"""
    step_end_match: Literal["token", "contains"] = "token"
    """`token`: `step_end` must be one token, and that token ends a step; `contains`: every token whose text
    contains `step_end` ends a step (a BPE vocabulary merges a newline with what surrounds it: '\\n\\n', '.\\n', ...,
    so the first line ends at whichever of them comes first)"""
    goal_aggregation: Literal["step", "latest"] = "step"
    """`step`: every step scores c^r p^(1-r) and a beam their geometric mean (Xie et al., the goal in the
    confidence's place); `latest`: the goal term is a Q-value of the whole prefix, so a beam scores
    c_latest^r * (geometric mean of p)^(1-r)"""


@dataclass
class SteeringDataParams:
    """Real-data steering (on a real-data notebook-01 run): where the evaluation prompts and the rated responses the
    prototypes are built from come from. Both adapters empty: the toy world's (prompts drawn from `split`, labelled
    examples from the RM run's training pairs, labelled by the judge)."""

    prompts: DatasetSpec = field(default_factory=DatasetSpec)
    """evaluation prompts, each distinct prompt once, drawn with `seed` (e.g. HelpSteer's validation split, adapter
    `helpsteer`; any adapter of records or problems works). Rendered with the policy's chat template when the
    notebook-01 run used it"""
    labelled: DatasetSpec = field(default_factory=DatasetSpec)
    """responses with attribute ratings the prototypes are built from (adapter `helpsteer`, e.g. its train split): a
    prototype with `value: true` averages the responses rated >= `rating_high` on its attribute, `value: false`
    those rated <= `rating_low`"""
    rating_high: int = 4
    """HelpSteer rates 0-4: a response rated at least this is "high" on an attribute"""
    rating_low: int = 1
    """a response rated at most this is "low"; those between are in neither set"""
    heldout_examples: int = 1000
    """rated responses of the `prompts` data set (when its adapter gives ratings) on which the prototype
    diagnostics are read (0: none)"""
    max_prompt_tokens: int = 0
    """leave out evaluation prompts longer than this many tokens once rendered (counted in setup.json; 0: keep
    all)"""

    @property
    def real(self) -> bool:
        return bool(self.prompts.adapter or self.labelled.adapter)


@dataclass
class SteeringParams:
    """Params of notebook 04_steering: steer a policy towards goal states with step-level guided beam search,
    and compare it with plain sampling and best-of-N at matched compute on the same prompts."""

    notebook: ClassVar[str] = "04_steering"

    params_name: str = "default"
    """name of the params file this run came from (the run's output folder); set by `load_params`"""
    seed: int = 0
    """seeds the evaluation prompts and the sampling (each reward-model seed adds its own offset)"""
    output_root: str = "outputs"
    run_dir: str = ""
    """an existing run folder of this notebook to work in (`gcrm run` prepares one); empty: a new run folder"""
    rm_run: str = ""
    """a finished 01_rm_training run folder whose policy and reward models are used; empty: the newest run made
    with params/01_rm_training/<rm_params>.yaml under output_root, trained now if there is none"""
    rm_params: str = "toy"
    """params of notebook 01 to find or train when rm_run is empty"""
    reward_models: list[str] = field(default_factory=lambda: ["goal_conditioned", "baseline"])
    """reward models of the RM run that guide decoding (names from its reward_models)"""
    rm_seeds: list[int] = field(default_factory=list)
    """which seeds of those reward models to use; empty: all of the RM run's seeds"""
    split: str = "id"
    """problem distribution of the evaluation prompts (toyworld.SPLITS; toy world only)"""
    data: SteeringDataParams = field(default_factory=SteeringDataParams)
    """real data (a real-data notebook-01 run): evaluation prompts and rated responses for the prototypes"""
    n_prompts: int = 200
    """evaluation prompts (questions not among the RM run's training pairs; real data: prompts of `data.prompts`
    not among `data.labelled`'s)"""
    prototype_examples: int = 4000
    """labelled responses used to build prototypes: both sides of the RM run's training pairs, in order (real
    data: the first responses of `data.labelled` rated high or low on a prototype's attribute)"""
    prototype_pooling: Literal["last", "mean"] = "last"
    """which final states make a prototype: the EOS (`last`, as the paper) or the mean over the response"""
    step_pooling: Literal["last", "mean"] = "last"
    """which state of a candidate step (read in context) meets the prototypes: its last token's, or the mean over
    its tokens (as the paper's released decoder pools a candidate)"""
    prototypes: list[AttributePrototype] = field(default_factory=lambda: [
        AttributePrototype("correct", "correct", True), AttributePrototype("incorrect", "correct", False),
        AttributePrototype("even", "even_answer", True), AttributePrototype("odd", "even_answer", False)])
    targets: list[SteeringTarget] = field(default_factory=lambda: [
        SteeringTarget("correct", {"correct": 1.0}, "correct"),
        SteeringTarget("correct_not_incorrect", {"correct": 1.0, "incorrect": -1.0}, "correct"),
        SteeringTarget("even_not_odd", {"even": 1.0, "odd": -1.0}, "even_answer")])
    """the goals steered towards; each is decoded with every reward model and seed"""
    beam: BeamParams = field(default_factory=BeamParams)
    best_of_n: int = 0
    """N of the best-of-N baseline; 0: matched to the policy tokens the guided decoder used in this run"""
    judge: str = "exact"
    """how responses are scored: `exact` (the toy world's scorers, no service needed), `rm_proxy` (real data, no
    service needed: PROXIES read off a reward model, its final reward and which rated prototype its EOS state is
    nearer, not ratings), or a judge registered with steering.register_judge (e.g. an LLM judge of helpfulness)"""
    judge_reward_model: str = ""
    """the reward model of the RM run (its first seed used here) the `rm_proxy` judge reads; empty: the first of
    `reward_models`"""
    exact_oracle: bool = True
    """also decode with the toy world's exact process value in place of the reward model: what step-level guidance
    reaches on correctness when its goal term is always right"""
    use_rm_cache: bool = True
    """reuse the reward model's key/value cache across steps (False: re-run prompt + prefix + step every time)"""
    batch_size: int = 256
    """prompts decoded together"""
    sequence_batch_size: int = 0
    """whole sequences per batch when sampling the baselines and reading responses with a reward model
    (prototypes, scoring, diagnostics, the proxy judge); 0: the toy defaults (256 sampled, 128 or 256 read)"""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`"""

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:
        from .toyworld.problems import SPLITS

        self._validate_data()

        if self.split not in SPLITS:
            raise ParamsError(f"split: unknown split {self.split!r}; known: {sorted(SPLITS)}")
        names = [p.name for p in self.prototypes]
        if len(set(names)) != len(names):
            raise ParamsError(f"prototypes: names must be distinct, got {names}")
        tnames = [t.name for t in self.targets]
        if len(set(tnames)) != len(tnames):
            raise ParamsError(f"targets: names must be distinct, got {tnames}")
        for i, t in enumerate(self.targets):
            unknown = [k for k in t.weights if k not in names]
            if unknown:
                raise ParamsError(f"targets[{i}].weights: unknown prototype(s) {unknown}; defined: {names}")
            if not any(w != 0 for w in t.weights.values()):
                raise ParamsError(f"targets[{i}].weights: need at least one non-zero weight")
        if not self.reward_models:
            raise ParamsError("reward_models: name at least one reward model of the RM run")
        b = self.beam
        for key in ("n_candidates", "beam_size", "max_step_tokens", "max_steps"):
            if getattr(b, key) < 1:
                raise ParamsError(f"beam.{key} must be >= 1")
        if b.temperature < 0 or b.beam_temperature < 0 or b.beam_temperature_decay <= 0:
            raise ParamsError("beam.temperature and beam.beam_temperature must be >= 0, beam_temperature_decay > 0")
        if self.n_prompts < 1 or self.prototype_examples < 2 or self.best_of_n < 0 or self.batch_size < 1:
            raise ParamsError("n_prompts >= 1, prototype_examples >= 2, best_of_n >= 0 and batch_size >= 1 needed")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ParamsError(f"device: expected auto, cpu or cuda, got {self.device!r}")
        if self.sequence_batch_size < 0:
            raise ParamsError("sequence_batch_size must be >= 0 (0: the toy defaults)")
        if self.judge_reward_model and self.judge_reward_model not in self.reward_models:
            raise ParamsError(f"judge_reward_model: {self.judge_reward_model!r} is not among reward_models "
                              f"{self.reward_models}")

    def _validate_data(self) -> None:
        """Real-data steering: both data sets, ratings for the prototypes, and nothing that needs the toy world."""
        d = self.data
        if not d.real:
            if self.judge == "rm_proxy":
                raise ParamsError("judge: rm_proxy reads prototypes of rated responses; it needs data.labelled "
                                  "(real data)")
            return
        from .real_data import ADAPTERS, HELPSTEER_ATTRIBUTES

        for key, spec in (("prompts", d.prompts), ("labelled", d.labelled)):
            if not spec.adapter or not spec.source:
                raise ParamsError(f"data.{key}: real-data steering needs both data.prompts and data.labelled, each "
                                  "with an adapter and a source")
            if spec.adapter not in ADAPTERS:
                raise ParamsError(f"data.{key}.adapter: unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}")
            if ADAPTERS[spec.adapter].kind == "pairs":
                raise ParamsError(f"data.{key}.adapter: {spec.adapter!r} gives preference pairs; records are needed")
        if d.labelled.adapter != "helpsteer":
            raise ParamsError(f"data.labelled.adapter: prototypes need rated responses (adapter helpsteer), got "
                              f"{d.labelled.adapter!r}")
        for i, spec in enumerate(self.prototypes):
            if spec.attribute not in HELPSTEER_ATTRIBUTES:
                raise ParamsError(f"prototypes[{i}].attribute: {spec.attribute!r} is not a HelpSteer rating; known: "
                                  f"{list(HELPSTEER_ATTRIBUTES)}")
        if not d.rating_low < d.rating_high:
            raise ParamsError(f"data.rating_low ({d.rating_low}) must be below data.rating_high ({d.rating_high})")
        if d.heldout_examples < 0 or d.max_prompt_tokens < 0:
            raise ParamsError("data.heldout_examples and data.max_prompt_tokens must be >= 0")
        if self.judge == "exact":
            raise ParamsError("judge: `exact` scores toy-world solutions only; on real data use `rm_proxy` (proxies "
                              "read off a reward model) or a judge registered with steering.register_judge")
        if self.exact_oracle:
            raise ParamsError("exact_oracle: the exact process value exists in the toy world only; set it to false "
                              "for real data")


NOTEBOOK_PARAMS: dict[str, type] = {RMTrainingParams.notebook: RMTrainingParams,
                                    RepresentationParams.notebook: RepresentationParams,
                                    FilteringParams.notebook: FilteringParams,
                                    SteeringParams.notebook: SteeringParams}



# ---------------------------------------------------------------------------------------------------------------
# strict conversion


def _check(tp: Any, value: Any, key: str) -> Any:
    """Convert `value` to type `tp` or raise ParamsError naming `key`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            try:
                return _check(a, value, key)
            except ParamsError:
                continue
        raise ParamsError(f"{key}: {value!r} is none of {args}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return [_check(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ParamsError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_check(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        return {_check(args[0], k, f"{key}.{k}"): _check(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{key}: unsupported type {tp}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial) mapping; missing keys keep their defaults.

    Raises ParamsError for an unknown key (naming it and the known ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ParamsError(f"unknown key(s) {[f'{prefix}.{k}' if prefix else k for k in unknown]}{where}; "
                          f"known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            # a partial section overrides only the keys it names
            default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING \
                else known[name].default
            value = {**to_dict(default), **value}
        kwargs[name] = _check(tp, value, key)
    obj = cls(**kwargs)
    if hasattr(obj, "validate") and not prefix:
        obj.validate()
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict of YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def load_params(notebook: str, path: str | Path) -> Any:
    """Read `params/<notebook>/<name>.yaml` (or any YAML path) into the notebook's params class.

    The file's stem becomes `params_name`. Errors name the file and the key.
    """
    cls = NOTEBOOK_PARAMS.get(notebook)
    if cls is None:
        raise ParamsError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    if "params_name" in raw and raw["params_name"] != path.stem:
        raise ParamsError(f"{path}: params_name {raw['params_name']!r} differs from the file name {path.stem!r}")
    raw = {**raw, "params_name": path.stem}
    try:
        return from_dict(cls, raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None


def from_notebook(cls: type, namespace: dict) -> Any:
    """Collect `cls`'s fields from a notebook's globals (its parameters cell, as papermill left it)."""
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in namespace]
    if missing:
        raise ParamsError(f"parameters cell lacks {missing}")
    return from_dict(cls, {f.name: namespace[f.name] for f in dataclasses.fields(cls)})


def parameters_cell_defaults(cls: type) -> dict[str, Any]:
    """The parameters cell's variables and values for `cls`: every field at its default, as plain values."""
    return to_dict(cls())
