"""Params of notebook 03_filtering (`FilteringParams`) and its pieces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .core import ParamsError, check_device


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
    loop: str = "cached"
    """``cached``: one decoding loop per batch from the policy's key/value cache, the reward model reading the new
    tokens at scoring points (every `chunk_size` tokens, and at `score_at`), pruned and finished rows dropped from
    both caches at once (`decode_pruned`); ``chunked``: one `generate` call per `chunk_size` tokens, finished rows
    leaving between chunks (`generate_pruned`, the former loop). Both give the same samples and decisions"""
    methods: list[str] = field(default_factory=list)
    """the pruning methods run online (names of filtering.methods.PRUNING, e.g. ``[q_goal, q_baseline]``); empty:
    every one. The online runs measure seconds: their tokens and decisions are the offline ones, so a method left
    out keeps its offline row and frontier point, without measured seconds"""
    score_at: str = ""
    """cached loop: a token after which the reward model also reads (the toy world's step separator ``;``: scoring
    at step boundaries, with `chunk_size` the most tokens between two reads); empty: every `chunk_size` tokens"""


@dataclass
class FrontierParams:
    """The accuracy-vs-compute frontier: every method of notebook 03 (and the field's early-stopping methods) on the
    same samples, its cost in FLOPs (policy prefill + generated tokens, plus the tokens a scorer reads times its
    size: 2 x parameters per token read), its operating point chosen on validation and reported on test."""

    enabled: bool = True
    """build the frontier (section 11 of the notebook)"""
    policy_params: int = 0
    """parameters of the policy in the cost model; 0: counted from the notebook-01 run's policy checkpoint (set it
    for `generations` written by another model)"""
    scorer_params: int = 0
    """parameters of every reward model that reads tokens, in the cost model; 0: counted from each checkpoint. A
    value below the policy's prices a smaller scorer: a scorer's break-even is set by its size relative to the
    policy"""
    max_accuracy_drop: float = 0.005
    """an operating point is eligible when its validation vote accuracy is at most this below the unfiltered vote's;
    the eligible one saving the most compute is chosen, and on test a method meets the target when it is within
    this of the unfiltered vote"""
    target_compute_saved: float = 0.5
    """the share of compute a method must save on test (at its validation-chosen point) to meet the target"""
    logprob_top_k: int = 20
    """DeepConf: top candidates per position whose log-probabilities make the token confidence"""
    window: int = 16
    """DeepConf: tokens per group (sliding window) of the group confidence (the paper: 2048 on long traces)"""
    tail: int = 16
    """DeepConf: last tokens of a trace whose mean confidence is the tail confidence"""
    keep_percents: list[float] = field(default_factory=lambda: [10.0, 30.0, 50.0, 70.0, 90.0, 100.0])
    """DeepConf's eta: offline, the most confident eta% of a question's traces vote; online, the stopping threshold
    is the (100 - eta)th percentile of the warm-up traces' lowest group confidence"""
    warmup_traces: int = 2
    """DeepConf online: traces per question generated in full to set the stopping threshold"""
    consensus_thresholds: list[float] = field(default_factory=lambda: [0.95])
    """DeepConf online's consensus stop (tau; the paper's 0.95): a question stops drawing traces once its leading
    answer holds this share of the voting traces' confidence weight. Each eta of `keep_percents` is tried with each
    tau and with no consensus stop (every trace drawn); empty: no consensus stop"""
    deepconf_in_flight: int = 1
    """DeepConf online: traces a question keeps generating at once after its warm-up (1: one after another, the
    algorithm as written; more: as a parallel engine runs them, a shorter chain of draws per question, at the price
    of the traces still running when the consensus is reached)"""
    rejection_points: list[int] = field(default_factory=lambda: [8, 16, 32])
    """speculative rejection: response tokens after which partial samples are scored and the best kept"""
    keep_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    """speculative rejection: share of each question's samples kept at the rejection point"""
    esc_windows: list[int] = field(default_factory=lambda: [2, 3, 4])
    """early-stopping self-consistency: samples per window; drawing stops after a window whose answers all agree"""
    adaptive_thresholds: list[float] = field(default_factory=lambda: [0.6, 0.75, 0.9, 0.95, 0.99])
    """adaptive consistency: drawing stops once the Beta posterior puts the leading answer ahead of the runner-up
    with at least this probability"""
    order_repeats: int = 100
    """draw orders over which ESC, adaptive consistency and DeepConf online are replayed on test at the setting
    validation chose, for their accuracy and compute saved in expectation over the order (`order_spread`); 0: not
    replayed"""
    probe_layer: int = -1
    """the policy's hidden layer the probe reads (-1: the last)"""
    probe_train_pairs: int = 512
    """training pairs of the notebook-01 run (a correct and an incorrect solution each) whose states train the
    probe"""
    probe_positions: int = 16
    """prefix positions drawn per training solution (all of them when it is shorter)"""
    probe_c: float = 1.0
    """inverse regularisation strength of the logistic-regression probe"""


@dataclass
class FilteringParams:
    """Params of notebook 03_filtering: filtering during majority voting with Q-values (PAPER.md section 4),
    offline as in the paper and online (samples stopped while being generated), against baselines on the same
    samples; the threshold is chosen on validation questions and reported on test questions."""

    notebook: ClassVar[str] = "03_filtering"

    params_name: str = "default"
    """name of the params file this run came from (the run's output folder); set by `load_params`"""
    seed: int = 0
    """seeds the questions, the sampled solutions (per sample, see filtering.noise.PerSampleGumbel) and random
    pruning"""
    output_root: str = "outputs"
    run_dir: str = ""
    """an existing run folder of this notebook to work in (`gcrm run` prepares one); empty: a new run folder"""
    rm_run: str = ""
    """a finished 01_rm_training run folder (absolute, or relative to the project root); empty: the newest run
    made with params/01_rm_training/<rm_params>.yaml under the same output_root, trained now if there is none"""
    rm_params: str = "toy"
    """params name of notebook 01 used when `rm_run` is empty"""
    goal_rm: str = "goal_conditioned"
    """the reward model whose Q-values do the filtering: a model's name in the 01 run, or a role (rm_runs.ROLES)
    that exactly one of its models has; the default is the role, so a run naming its goal-conditioned model
    otherwise (e.g. `contrastive`) works as is"""
    baseline_rm: str = "baseline"
    """the preference-only reward model of the same run, for the baselines: a name or a role (default: the role)"""
    prm: str = "process"
    """the process reward model of the same run that prunes at its first step judged wrong (method `prm`): a name or
    a role (default: the role `process`); when the run has none, or this is empty, the method is left out and
    metrics.json says why (`left_out`)"""
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
    device: str = "auto"
    """where the policy and the reward models run: `auto` (the first GPU when there is one, else the CPU), `cpu`,
    `cuda` or `cuda:<i>` (gcrm_kit.device.resolve_device)"""
    online: OnlineParams = field(default_factory=OnlineParams)
    frontier: FrontierParams = field(default_factory=FrontierParams)

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
        if self.online.loop not in ("cached", "chunked"):
            raise ParamsError(f"online.loop: expected 'cached' or 'chunked', got {self.online.loop!r}")
        if self.online.score_at and self.online.loop != "cached":
            raise ParamsError("online.score_at needs online.loop 'cached' (the chunked loop reads every chunk_size "
                              "tokens)")
        check_device(self.device)
        f = self.frontier
        if f.policy_params < 0 or f.scorer_params < 0 or f.max_accuracy_drop < 0:
            raise ParamsError("frontier.policy_params, frontier.scorer_params and frontier.max_accuracy_drop must be "
                              ">= 0")
        if (f.logprob_top_k < 1 or f.window < 1 or f.tail < 1 or f.warmup_traces < 1 or f.probe_positions < 1
                or f.deepconf_in_flight < 1):
            raise ParamsError("frontier.logprob_top_k, window, tail, warmup_traces, probe_positions and "
                              "deepconf_in_flight must be >= 1")
        if not f.keep_percents or any(not 0 < e <= 100 for e in f.keep_percents):
            raise ParamsError(f"frontier.keep_percents: need values in (0, 100], got {f.keep_percents}")
        if any(not 0 < t <= 1 for t in f.consensus_thresholds):
            raise ParamsError(f"frontier.consensus_thresholds: need shares in (0, 1], got {f.consensus_thresholds}")
        if not f.keep_fractions or any(not 0 < a <= 1 for a in f.keep_fractions):
            raise ParamsError(f"frontier.keep_fractions: need values in (0, 1], got {f.keep_fractions}")
        if not f.rejection_points or min(f.rejection_points) < 0:
            raise ParamsError(f"frontier.rejection_points: need token counts >= 0, got {f.rejection_points}")
        if not f.esc_windows or min(f.esc_windows) < 1:
            raise ParamsError(f"frontier.esc_windows: need window sizes >= 1, got {f.esc_windows}")
        if f.order_repeats < 0:
            raise ParamsError(f"frontier.order_repeats: need a count >= 0, got {f.order_repeats}")
        if not f.adaptive_thresholds or any(not 0.5 <= c < 1 for c in f.adaptive_thresholds):
            raise ParamsError(f"frontier.adaptive_thresholds: need probabilities in [0.5, 1), got "
                              f"{f.adaptive_thresholds}")
        if self.goal_rm == self.baseline_rm:
            raise ParamsError("goal_rm and baseline_rm must name different reward models")
