"""What the accuracy-vs-compute frontier needs beyond the samples and the reward models' scores, gathered once
(`prepare_frontier`): prompt lengths, parameter counts, the policy's token confidences (DeepConf) and a probe's
values at every prefix (the probe trained on the policy's hidden states). The policy's outputs are reduced a batch at
a time, so no full set of log-probabilities or hidden states is ever held. A method whose inputs cannot be had is
left out with the reason (`skipped`), and the others still run: a `generations` file without log-probabilities
loses DeepConf only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..device import resolve_device
from ..params import FilteringParams
from .cost import checkpoint_params, prompt_tokens
from .deepconf import file_logprobs, policy_confidences, trace_confidences
from .methods import REWARD_MODELS
from .prm_pruning import PRM_METHOD, PRM_SCORER
from .probe import sample_values, train_probe, training_pairs, training_states
from .samples import SampleSet, ends_with_eos
from .setup import RMSetup


@dataclass
class FrontierInputs:
    """prompts: {set: (S,) prompt tokens per sample}; policy_params; scorer_params: {'goal', 'baseline' (and
    'process' with a process reward model): reward model parameters in the cost model}; confidences: {set: per
    sample its token confidences} (None: DeepConf left out); probe: {set: (S, Lmax) the probe's value after each
    response token, NaN past each end} and probe_params: its head's parameters (d + 1) (None, 0: probe left out);
    skipped: {method family: why it was left out}; tokenizer: the kit's."""

    prompts: dict[str, np.ndarray]
    policy_params: float
    scorer_params: dict[str, float]
    tokenizer: object
    confidences: dict[str, list[np.ndarray]] | None = None
    probe: dict[str, np.ndarray] | None = None
    probe_params: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)


def reward_model_params(p: FilteringParams, setup: RMSetup) -> dict[str, float]:
    """{'goal', 'baseline' (and 'process' when the setup has a process reward model): parameters of that reward
    model}: `frontier.scorer_params` when set, else counted from the first rm seed's checkpoint. Raises ValueError
    naming the checkpoint when it cannot be counted (e.g. an adapter-only folder): set `frontier.scorer_params`
    then."""
    out = {}
    dirs = {**{w: (setup.model_dirs[w][0], "reward_model") for w in REWARD_MODELS},
            **({PRM_SCORER: (setup.prm_dirs[0], "process")} if setup.prm_dirs else {})}
    for which, (d, kind) in dirs.items():
        if p.frontier.scorer_params:
            out[which] = float(p.frontier.scorer_params)
            continue
        try:
            out[which] = float(checkpoint_params(d, kind))
        except (OSError, ValueError) as e:
            raise ValueError(f"{d}: cannot count the reward model's parameters ({e}); set frontier.scorer_params"
                             ) from None
    return out


def prepare_frontier(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet]) -> FrontierInputs:
    """Everything `frontier.evaluate_frontier` needs. With `generations`, DeepConf reads each record's
    log-probabilities (``meta.token_logprobs``, ``meta.top_logprobs``) and the probe is left out (the run's policy
    did not write the file); otherwise the run's policy, which wrote the samples, gives both in one forward pass."""
    f = p.frontier
    tokenizer = AutoTokenizer.from_pretrained(setup.model_dirs["goal"][0])  # the policy's, with its pad token
    prompts = {s: prompt_tokens(ss.records, tokenizer) for s, ss in samples.items()}
    pol = float(f.policy_params or checkpoint_params(setup.policy_dir, "causal_lm"))
    inputs = FrontierInputs(prompts, pol, reward_model_params(p, setup), tokenizer)
    if "prm" in setup.left_out:
        inputs.skipped[PRM_METHOD] = setup.left_out["prm"]
    if p.generations:
        try:
            inputs.confidences = {s: trace_confidences(file_logprobs(p.generations, ss, f.logprob_top_k))
                                  for s, ss in samples.items()}
        except ValueError as e:
            inputs.skipped["deepconf"] = str(e)
        inputs.skipped["probe"] = "the samples come from a file: the run's policy did not write them"
        return inputs
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir, dtype="auto").to(resolve_device(p.device))
    inputs.confidences = {s: policy_confidences(policy, tokenizer, ss, f.logprob_top_k, p.batch_size)
                          for s, ss in samples.items()}
    try:
        pairs = training_pairs(setup.run_dir, f.probe_train_pairs)
    except (OSError, ValueError) as e:
        inputs.skipped["probe"] = f"no training solutions: {e}"
        return inputs
    states, labels = training_states(policy, tokenizer, pairs, f.probe_positions, [p.seed, 9], f.probe_layer,
                                     p.batch_size)
    probe = train_probe(states, labels, f.probe_positions, [p.seed, 9], f.probe_c)
    inputs.probe_params = float(states[0].shape[1] + 1)
    inputs.probe = {s: sample_values(policy, tokenizer, probe, [r.prompt for r in ss.records],
                                     [r.response for r in ss.records], [ends_with_eos(r) for r in ss.records],
                                     int(ss.length.max()), f.probe_layer, p.batch_size) for s, ss in samples.items()}
    return inputs
