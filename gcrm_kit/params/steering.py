"""Params of notebook 04_steering (`SteeringParams`) and its pieces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..real_data import ADAPTERS, HELPSTEER_ATTRIBUTES
from ..toyworld.problems import SPLITS
from .core import ParamsError, check_device
from .scale import DatasetSpec


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
    """reward models of the RM run that guide decoding: names from its reward_models, or roles (`baseline`,
    `goal_conditioned`, `grm`, `goal_conditioned_grm`: `rm_runs.ROLES`) that one of its models has"""
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
    prm: str = "process"
    """the process reward model of the RM run that guides `guided_prm` (its probability that a candidate step is
    right in the goal term's place): a name or a role (default: the role `process`); when the run has none, or this
    is empty, the method is left out and metrics.json says why (`left_out`)"""
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
    """`auto` (the first GPU when there is one, else the CPU), `cpu`, `cuda` or `cuda:<index>`
    (`gcrm_kit.device.resolve_device`)"""

    @property
    def params_stem(self) -> str:
        return self.params_name

    def validate(self) -> None:

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
        check_device(self.device)
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
