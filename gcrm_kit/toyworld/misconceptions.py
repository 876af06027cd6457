"""Systematic wrong rules ("misconceptions") a corpus writer may hold, applied with confidence, not by accident.

In the default world every error is a slip: a step drawn at random with a small probability, so the policy's own
token probabilities already flag it. Real LMs are also wrong in a second way: they apply a wrong rule with high
probability (a misconception learnt from their data), consistently within a solution, and nothing in the text marks
it as different from a right step. Subtraction bugs such as "smaller from larger" are the classic systematic errors
of people doing arithmetic (Brown & Burton 1978, "Diagnostic models for procedural bugs"); LMs likewise repeat
consistent, confident reasoning errors that their own likelihood does not flag.

A misconception here is tied to one operator and replaces that operator's rule by a wrong one that still writes a
single digit in the same step format (``7-9=2`` instead of ``7-9=8``): the same tokens, the same shape. It *bites*
only on some inputs (``|v - d|`` equals ``(v - d) mod 10`` when v >= d), so the first wrong step is the first step
where it changes the value, which the verifier (problems.verify) finds as for any other error.

Input: a `Problem` and the names of the misconceptions a writer holds; output: the steps' (operand, result) pairs
or the solution text. The corpus (corpus.noisy_solution) draws which misconceptions a solution holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .problems import ANSWER_PREFIX, OPERATORS, STEP_SEP, Problem


@dataclass(frozen=True)
class Misconception:
    """A wrong rule for `operator`: `rule(value, operand)` gives the digit the writer believes is right."""

    name: str
    operator: str
    rule: Callable[[int, int], int]
    description: str


MISCONCEPTIONS: dict[str, Misconception] = {m.name: m for m in (
    Misconception("minus_abs", "-", lambda v, d: abs(v - d),
                  "subtracts the smaller digit from the larger instead of wrapping below zero: 3-7=4 (right: 6)"),
    Misconception("plus_carry", "+", lambda v, d: (v + d + (v + d >= 10)) % 10,
                  "adds the carry into the units digit when the sum passes 9: 7+5=3 (right: 2)"),
    Misconception("times_tens", "*", lambda v, d: (v * d) // 10 if v * d >= 10 else v * d,
                  "writes the tens digit of a two-digit product instead of its units: 7*8=5 (right: 6)"),
    Misconception("mod_quotient", "%", lambda v, d: v // d,
                  "writes the quotient instead of the remainder: 9%4=2 (right: 1)"),
)}


def check_names(names: Iterable[str]) -> None:
    """Raise ValueError naming any name that is not in MISCONCEPTIONS."""
    unknown = [n for n in names if n not in MISCONCEPTIONS]
    if unknown:
        raise ValueError(f"unknown misconception(s) {unknown}; known: {sorted(MISCONCEPTIONS)}")


def step_rule(op: str, held: Iterable[str]) -> Callable[[int, int], int]:
    """The rule a writer holding misconceptions `held` applies to operator `op` (the true rule when none of them is
    about `op`; the first one listed wins when several are)."""
    for name in held:
        if MISCONCEPTIONS[name].operator == op:
            return MISCONCEPTIONS[name].rule
    return OPERATORS[op][1]


def applicable(problem: Problem, rates: dict[str, float], min_count: int = 1) -> list[str]:
    """The misconceptions of `rates` (name -> rate) with a positive rate whose operator the question contains at
    least `min_count` times, in the order of `rates`: those a corpus solution of `problem` draws for (one draw
    each). With `min_count` 1 every question containing the operator can trigger it; with more, only questions
    that lean on the operator (toyworld.WorldParams.misconception_min_count says why)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: dict[str, int] = {}
    for op, _ in problem.steps:
        counts[op] = counts.get(op, 0) + 1
    return [name for name, rate in rates.items()
            if rate > 0 and counts.get(MISCONCEPTIONS[name].operator, 0) >= min_count]


def misconception_solution(problem: Problem, held: Iterable[str]) -> str:
    """The solution a writer holding misconceptions `held` writes with no slip: every step restates the running
    value, the question's operator and operand, and the result of the writer's rule; later steps carry on from it."""
    held = list(held)
    check_names(held)
    value, parts = problem.start, []
    for op, d in problem.steps:
        result = step_rule(op, held)(value, d)
        parts.append(f"{value}{op}{d}={result}")
        value = result
    return STEP_SEP.join(parts + [f"{ANSWER_PREFIX}{value}"])


def first_biting_step(problem: Problem, held: Iterable[str]) -> int | None:
    """Index of the first step where the misconceptions `held` change the running value (None when they never do):
    the first wrong step of `misconception_solution`."""
    held = list(held)
    value = problem.start
    for i, (op, d) in enumerate(problem.steps):
        if step_rule(op, held)(value, d) != OPERATORS[op][1](value, d):
            return i
        value = OPERATORS[op][1](value, d)
    return None
