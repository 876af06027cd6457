"""Params of notebook 02_representation_analysis (`RepresentationParams`) and its pieces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .core import ParamsError, check_device


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
    """the reward models to analyse, each a name or a role (baseline, goal_conditioned, grm,
    goal_conditioned_grm; see `gcrm_kit.rm_runs.ROLES`); empty: all of the run's"""
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
    device: str = "auto"
    """where the reward models run: `auto` (the first GPU when there is one, else the CPU), `cpu`, `cuda` or
    `cuda:<i>` (`gcrm_kit.device.resolve_device`)"""
    processbench_validation_share: float = 0.5
    """share of the analysed solutions (drawn with `seed`) on which each per-step reader's threshold is chosen;
    ProcessBench's scores are reported on the rest"""

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
        check_device(self.device)
        if not 0.0 < self.processbench_validation_share < 1.0:
            raise ParamsError("processbench_validation_share must be in (0, 1), got "
                              f"{self.processbench_validation_share}")
