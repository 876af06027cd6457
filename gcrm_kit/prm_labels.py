"""Step labels for process reward models, from two sources:

- the verifier (`verifier_step_labels`): exact; the toy world knows each step's truth, so every step before the
  first wrong one is right and every step from it on is wrong (a solution that went wrong stays on a wrong path,
  as Math-Shepherd's labels have it);
- Monte-Carlo rollouts of the policy (`monte_carlo_step_labels`, Math-Shepherd, Wang et al. 2024): from the prefix
  that ends with step k, the policy writes `n_rollouts` completions; the hard label is whether any of them reaches
  the right answer, the soft label the share that does. The last step is the whole solution, labelled by the answer
  check itself with no rollout. What this costs is counted in policy tokens generated (`LabellingCost`).

Both return `prm.StepwiseExample`s, one per solution, in the order given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from .data import GenerationRecord
from .generation import sample_responses
from .process import toy_processbench_records
from .prm import StepwiseExample
from .toyworld.problems import STEP_SEP, parse_prompt, verify


@dataclass
class LabellingCost:
    """What labelling a set of solutions took: `source` ("verifier", "monte_carlo" or "file"), solutions and steps
    labelled, rollouts drawn (n_rollouts per step before the last), the policy tokens they generated (each
    completion's tokens, its EOS included when it wrote one), and the settings."""

    source: str
    n_solutions: int = 0
    n_steps: int = 0
    rollouts: int = 0
    policy_tokens: int = 0
    n_rollouts: int = 0
    soft: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def verifier_step_labels(records: Sequence[GenerationRecord]) -> tuple[list[StepwiseExample], LabellingCost]:
    """Toy-world records (meta "first_error_char", as `toyworld.sampling` writes it) -> one example per record: its
    steps (`process.toy_steps`) labelled true before the first wrong step (`process.toy_first_error_step`; for an
    incorrect solution without a located wrong step, its answer) and false from it on. Raises ValueError naming a
    record without a usable first_error_char."""
    out = []
    for r in toy_processbench_records(records):
        steps, k = r.meta["steps"], r.meta["label"]
        out.append(StepwiseExample(r.prompt, steps, [True] * len(steps) if k < 0 else
                                   [True] * k + [False] * (len(steps) - k)))
    return out, LabellingCost("verifier", len(out), sum(len(e.steps) for e in out))


def toy_answer_check(prompt: str, response: str) -> bool:
    """Whether a toy-world solution to `prompt` ends with the right answer (`toyworld.problems.verify`)."""
    return verify(parse_prompt(prompt), response).is_correct


def monte_carlo_step_labels(policy, tokenizer, records: Sequence[tuple[str, list[str]]], n_rollouts: int,
                            soft: bool = False, check: Callable[[str, str], bool] = toy_answer_check,
                            separator: str = STEP_SEP, temperature: float = 1.0, max_new_tokens: int = 64,
                            batch_size: int = 256, seed: int = 0, suppress_tokens: list[str] | None = None
                            ) -> tuple[list[StepwiseExample], LabellingCost]:
    """Math-Shepherd labels of (prompt, steps) solutions by rolling out the causal LM `policy`.

    For step k < S-1 the prefix is the steps up to k joined by `separator`, plus the separator (the next step
    starts after it); `n_rollouts` completions are sampled from prompt + prefix (`generation.sample_responses`, at
    `temperature`, seeded with `seed`), and each full text prefix + completion is judged by `check(prompt, text)`.
    Label: 1.0 when any rollout is right (hard) or the share that is right (`soft`). The last step is the solution
    itself: `check` labels it. Policy tokens are counted by tokenising each completion again (plus its EOS when it
    ended with one). Returns (examples, cost). Raises ValueError for n_rollouts < 1."""
    if n_rollouts < 1:
        raise ValueError(f"n_rollouts must be >= 1, got {n_rollouts}")
    queries, where = [], []
    for i, (prompt, steps) in enumerate(records):
        for k in range(len(steps) - 1):
            prefix = separator.join(steps[:k + 1]) + separator
            queries.append(prompt + prefix)
            where.append((i, k, prefix))
    texts, finished = sample_responses(policy, tokenizer, queries, n=n_rollouts, temperature=temperature,
                                       max_new_tokens=max_new_tokens, batch_size=batch_size,
                                       suppress_tokens=suppress_tokens, seed=seed, desc="Monte-Carlo rollouts",
                                       return_finished=True) if queries else ([], [])
    labels = [[0.0] * len(steps) for _, steps in records]
    tokens = 0
    for (i, k, prefix), outs, fins in zip(where, texts, finished):
        prompt = records[i][0]
        right = [check(prompt, prefix + t) for t in outs]
        labels[i][k] = sum(right) / len(right) if soft else float(any(right))
        tokens += sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + int(f) for t, f in zip(outs, fins))
    for i, (prompt, steps) in enumerate(records):
        labels[i][-1] = float(check(prompt, separator.join(steps)))
    examples = [StepwiseExample(p, list(s), y) for (p, s), y in zip(records, labels)]
    cost = LabellingCost("monte_carlo", len(examples), sum(len(s) for _, s in records), len(queries) * n_rollouts,
                         tokens, n_rollouts, soft)
    return examples, cost
