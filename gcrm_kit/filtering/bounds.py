"""What bounds every filtering method of notebook 03 on its test samples (`gcrm_kit.bounds`): the same N samples
per question the methods vote over, with the policy's own confidence and the savings of the first-error and
vote-level oracles. The vote-level oracle is the ceiling of this notebook's question: the most tokens any pruning
rule could save while every question keeps the vote's outcome.

The policy's per-token log-probabilities come from one forward pass per batch (`confidence.policy_logprobs`), which
draws no random numbers. Toy runs only: samples of a real-data run or read from `generations` carry no first
wrong step, and the run's policy is not the one that wrote a file's samples.
"""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from ..bounds import WorldBounds, world_bounds
from ..confidence import policy_logprobs
from ..device import resolve_device
from ..params import FilteringParams
from .samples import SampleSet, ends_with_eos
from .setup import RMSetup


def world_bounds_of(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet]) -> WorldBounds | None:
    """The facts of `gcrm_kit.bounds` on ``samples["test"]``, scored by the notebook-01 policy on
    ``resolve_device(p.device)`` in batches of ``p.batch_size``; a sample cut at `max_new_tokens` (meta
    ``finished`` false) is scored and counted without an EOS. Token counts use the reward models' tokenizer, as the
    methods' accounting does. None, with a note saying why, for a real-data run or samples read from
    `generations`."""
    if p.generations or setup.rm_params.data.kind != "toy":
        print("world bounds skipped: they need the toy world's samples (its verifier's first wrong steps) and the "
              "policy that wrote them")
        return None
    recs = samples["test"].records
    tokenizer = AutoTokenizer.from_pretrained(setup.model_dirs["goal"][0])  # the policy's, with its pad token
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(resolve_device(p.device))
    eos = [ends_with_eos(r) for r in recs]
    lps = policy_logprobs(policy, tokenizer, [r.prompt for r in recs], [r.response for r in recs],
                          batch_size=p.batch_size, eos=eos)
    return world_bounds(recs, tokenizer, lps)
