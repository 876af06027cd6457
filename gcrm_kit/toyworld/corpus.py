"""The base model's training corpus: solutions with realistic slips, and the self-checking marks.

A real reward model starts from a pretrained LM that already has some notion of what a wrong step looks like.
A from-scratch toy backbone does not, and a reward model read from its last token then stays at chance
(see docs/toy_world.md, "Making correctness learnable"). The corpus therefore teaches the base model to check its
work, the way annotated or self-verifying text does for real LMs:

- a *correction mark* ``!`` right after a wrong step, on a share of the erroneous solutions;
- a *verdict* ``Y`` / ``N`` right after the end-of-sequence token, on a share of all solutions: a self-evaluation
  written once the solution is finished.

The verdict sits after the EOS on purpose: the EOS is where a reward model reads its reward, so the base model's
state there already has to carry whether the solution is right, as a pretrained LM's final state carries what
it makes of a text. With the verdict before the EOS (``...A:5|Y``), the knowledge lives at a token sampled
solutions never contain and a last-token reward model stayed at chance (docs/toy_world.md, "Making correctness
learnable").

Sampled solutions never carry the marks: generation suppresses the correction mark and stops at the EOS, so
reward models and the verifier only ever see plain solutions; the marks shape the base model's representations.

Besides slips, a solution may hold *misconceptions* (toyworld.misconceptions): wrong rules drawn once per solution
at given rates and applied at every step of their operator. Their steps are wrong steps like any other: marked,
and the verdict says N when the answer ends up wrong. Off by default (no rates, no random draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .misconceptions import applicable, check_names, step_rule
from .problems import ANSWER_PREFIX, OPERATORS, STEP_SEP, Problem, SplitSpec, sample_problem

CORRECTION_MARK = "!"
VERDICT_YES, VERDICT_NO = "Y", "N"
#: tokens generation must never produce (the verdict needs no suppression: it only ever follows the EOS)
MARK_CHARS = (CORRECTION_MARK,)
#: which steps of a marked solution carry the correction mark (see noisy_solution)
MARK_STYLES = ("step", "state")


@dataclass(frozen=True)
class SlipModel:
    """How the corpus makes mistakes: each step is wrong with `step_error_rate`; a wrong step either writes a
    wrong result (its own arithmetic is off) or, with `operand_slip_share`, copies a wrong operand and computes
    correctly from it. Later steps carry on from the wrong value, as people do."""

    step_error_rate: float = 0.12
    operand_slip_share: float = 0.25


def noisy_solution(
    problem: Problem,
    rng: np.random.Generator,
    slips: SlipModel,
    correction_mark_rate: float = 0.0,
    verdict_rate: float = 0.0,
    mark_style: str = "step",
    misconception_rates: dict[str, float] | None = None,
    misconception_min_count: int = 1,
) -> tuple[str, bool, str]:
    """Write a solution of `problem` with slips and, at the given rates, marks.

    `mark_style` says which steps of a marked solution carry the correction mark: ``step``, the steps whose own
    computation is wrong (a wrong operand or a wrong result); ``state``, every step after which the running value
    differs from the right one (the first wrong step and every later one, until a later step happens to bring the
    value back, as `*0` does).

    `misconception_rates` (name -> probability, names from toyworld.MISCONCEPTIONS): for each misconception whose
    operator the question contains, one draw says whether this solution holds it; a held one replaces its
    operator's rule at every such step (the writer commits to one approach for the whole solution). Slips then
    happen on top, around the rule the writer believes. None or {} draws nothing (the default world).
    `misconception_min_count`: only questions with at least this many steps of the operator draw for it
    (misconceptions.applicable).

    Returns (text, is_correct, verdict): correctness is that of the final answer; verdict is "Y", "N" or ""
    (no verdict), to be written after the EOS.
    """
    if mark_style not in MARK_STYLES:
        raise ValueError(f"mark_style must be one of {MARK_STYLES}, got {mark_style!r}")
    mark = rng.random() < correction_mark_rate
    held: list[str] = []
    if misconception_rates:
        check_names(misconception_rates)
        held = [n for n in applicable(problem, misconception_rates, misconception_min_count)
                if rng.random() < misconception_rates[n]]
    value = true_value = problem.start
    parts: list[str] = []
    for op, d in problem.steps:
        fn = OPERATORS[op][1]
        believed = step_rule(op, held) if held else fn
        true_value = fn(true_value, d)
        shown_d, result = d, believed(value, d)
        wrong = rng.random() < slips.step_error_rate
        if wrong:
            if rng.random() < slips.operand_slip_share:
                lo = 2 if op == "%" else 1
                choices = [x for x in range(lo, 10) if x != d]
                shown_d = int(rng.choice(choices))
                result = believed(value, shown_d)
            else:
                result = int(rng.choice([x for x in range(10) if x != result]))
        step = f"{value}{op}{shown_d}={result}"
        # a slip whose effect happens to equal the right value is no error: mark only real ones
        truly_wrong = shown_d != d or result != fn(value, d)
        off_track = result != true_value
        if mark and (truly_wrong if mark_style == "step" else off_track):
            step += CORRECTION_MARK
        parts.append(step)
        value = result
    text = STEP_SEP.join(parts + [f"{ANSWER_PREFIX}{value}"])
    correct = value == problem.answer
    verdict = (VERDICT_YES if correct else VERDICT_NO) if rng.random() < verdict_rate else ""
    return text, correct, verdict


def strip_marks(text: str) -> str:
    """Remove correction marks: what a sampled solution looks like."""
    return text.replace(CORRECTION_MARK, "")


def build_corpus(
    rng: np.random.Generator,
    mixture: list[tuple[SplitSpec, float]],
    n: int,
    slips: SlipModel,
    correction_mark_rate: float,
    verdict_rate: float,
    mark_style: str = "step",
    misconception_rates: dict[str, float] | None = None,
    misconception_min_count: int = 1,
) -> list[tuple[str, str, str]]:
    """Draw `n` (prompt, solution, verdict) examples from a weighted mixture of problem distributions, each written
    by noisy_solution (slips, marks and, at `misconception_rates` and `misconception_min_count`, misconceptions)."""
    weights = np.array([w for _, w in mixture], dtype=float)
    weights /= weights.sum()
    which = rng.choice(len(mixture), size=n, p=weights)
    out = []
    for k in which:
        prob = sample_problem(rng, mixture[k][0])
        text, _, verdict = noisy_solution(prob, rng, slips, correction_mark_rate, verdict_rate, mark_style,
                                          misconception_rates, misconception_min_count)
        out.append((prob.prompt, text, verdict))
    return out
