"""Params of notebook 01_rm_training (`RMTrainingParams`) and the pieces only it uses: preference pairs, the
contrastive term, one reward model's objective, training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..toyworld.problems import SPLITS, STEP_SEP
from .core import ParamsError, check_device
from .scale import DataParams, DistributedParams, LoraParams, ModelParams, QuantParams, validate_scale
from .world import PolicyParams, WorldParams, validate_world


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
    kind: Literal["outcome", "process"] = "outcome"
    """`outcome`: one reward per response, trained on the preference pairs (sequence classification); `process`: a
    process reward model, one probability per step that the step is right, trained on the pairs' solutions labelled
    step by step as `process` says (token classification, read on each step's separator; its weights above stay 0)"""


@dataclass
class ProcessParams:
    """Process reward models (`kind: process`): where their step labels come from. They train on the solutions of
    the same training pairs (both sides) with the same seeds and `training` settings as the other reward models."""

    labels: Literal["verifier", "monte_carlo"] = "verifier"
    """`verifier`: exact (the toy world knows each step's truth: right before the first wrong step, wrong from it
    on); `monte_carlo`: Math-Shepherd's labels from policy rollouts of each step's prefix"""
    n_rollouts: int = 8
    """monte_carlo: completions sampled from each step's prefix"""
    soft: bool = False
    """monte_carlo: label a step with the share of its rollouts that reach the right answer (soft) instead of
    whether any does (hard)"""
    rollout_temperature: float = 1.0
    """monte_carlo: sampling temperature of the rollouts"""
    data_file: str = ""
    """a file in TRL's stepwise format (JSON lines {prompt, completions: [steps], labels: [true/false]}, relative to
    the project root or absolute) to train on instead of labelling the pairs' solutions; `labels` is then unused"""
    step_separator: str = ""
    """what joins a solution's steps, and the token the step labels sit on; empty: the toy world's ';' with
    data.kind toy, else a blank line (real_data.STEP_JOIN)"""


@dataclass
class RewardTrainingParams:
    """Reward-model optimisation, shared by every reward model of a run (same data, same seeds)."""

    epochs: float = 2.0
    """two passes: with one (90 steps on the toy pairs) one reward-model seed in three never took off"""
    batch_size: int = 32
    """pairs per step (2x sequences)"""
    learning_rate: float = 3e-4
    """chosen on the toy world by the baseline's held-out pairwise accuracy (docs/toy_world.md, "Making correctness learnable")"""
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
    torch_compile: bool = False
    """train through `torch.compile` (the Trainer's `torch_compile`): on the 2-core CPU a toy reward-model step took
    0.32-0.37 s against 0.41 s eager after a first compile of 4-127 s, and its losses differ from eager ones by float
    round-off (about 5e-7), so trained models are not bit-identical to the default's (docs/benchmarks.md)"""


@dataclass
class EvaluationParams:
    """Sampled solutions per split scored by every reward model (AUROC for correctness)."""

    splits: list[str] = field(default_factory=lambda: ["id", "short_chain", "long_chain", "new_operator", "verbal",
                                                       "hard"])
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
    device: str = "auto"
    """where reward models are scored after training (checkpoint check, prototype, evaluation, best-of-n): auto
    (the first GPU when there is one, else the CPU), cpu, cuda or cuda:<index> (gcrm_kit.device.resolve_device).
    Training itself runs where transformers' Trainer puts it (a GPU when there is one)"""
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
    process: ProcessParams = field(default_factory=ProcessParams)
    """step labels of the process reward models (`reward_models` entries with kind: process)"""

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:
        check_device(self.device)
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
        validate_world(self.world)
        if not self.rm_seeds:
            raise ParamsError("rm_seeds: need at least one seed")
        for i, r in enumerate(self.reward_models):
            if not 0.0 <= r.grm_weight < 1.0:
                raise ParamsError(f"reward_models[{i}].grm_weight must be in [0, 1), got {r.grm_weight}")
            if r.contrastive_weight < 0:
                raise ParamsError(f"reward_models[{i}].contrastive_weight must be >= 0")
            if r.kind == "process" and (r.contrastive_weight or r.grm_weight):
                raise ParamsError(f"reward_models[{i}] ({r.name}): a process reward model trains on step labels "
                                  "alone; leave contrastive_weight and grm_weight at 0")
            if r.kind == "process" and self.data.kind != "toy" and not self.process.data_file:
                raise ParamsError(f"reward_models[{i}] ({r.name}): real preference pairs carry no step labels; give "
                                  "process.data_file (TRL stepwise JSON lines) for a process reward model")
        pr = self.process
        if pr.n_rollouts < 1 or pr.rollout_temperature < 0:
            raise ParamsError(f"process.n_rollouts must be >= 1 and process.rollout_temperature >= 0, got "
                              f"{pr.n_rollouts} and {pr.rollout_temperature}")
        if any(n < 2 for n in self.train_pair_counts):
            raise ParamsError(f"train_pair_counts: each count must be >= 2, got {self.train_pair_counts}")
        if not 0.0 < self.pairs.heldout_fraction < 1.0:
            raise ParamsError("pairs.heldout_fraction must be in (0, 1)")
        if self.policy.max_attempts < 1 or not 0.0 <= self.policy.min_verdict_auroc <= 1.0:
            raise ParamsError("policy.max_attempts must be >= 1 and policy.min_verdict_auroc in [0, 1], got "
                              f"{self.policy.max_attempts} and {self.policy.min_verdict_auroc}")
        validate_scale(self)


def step_separator_of(p: RMTrainingParams) -> str:
    """The step separator of `p`'s process reward models: `process.step_separator`, or by default the toy world's
    ';' (data.kind toy) or a blank line (the separator `real_data.STEP_JOIN` joins a stepwise file's steps with)."""
    return p.process.step_separator or (STEP_SEP if p.data.kind == "toy" else "\n\n")
