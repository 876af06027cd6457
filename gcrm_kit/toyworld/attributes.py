"""Attributes of a toy-world solution with exact scorers: the toy world's stand-in for HelpSteer's ratings.

HelpSteer rates responses on helpfulness, correctness, coherence, complexity and verbosity, and the paper steers
generation towards prototypes built from highly rated responses. The toy world cannot be rated by people, but
every attribute below is computed exactly from the question and the solution, so a steering experiment can be
scored without a judge.

In the default world a question has exactly one correct solution, so any attribute other than correctness can
only move by changing which steps are right. The attributes are chosen because the policy's sampled solutions
really vary in them (a solution at temperature 1 is wrong about 40% of the time, and its answer is then some
other digit):

- ``correct``: the final answer is right (the role of HelpSteer's correctness / helpfulness);
- ``error_free``: every step is right, not just the answer (a wrong step can cancel out modulo 10);
- ``even_answer``: the answer written is an even digit: a property of the *output* that is not "being good".
  On a question whose true answer is odd, an even answer means a wrong one, so steering towards it shows that
  a prototype points at what it was built from, whether or not that is correctness;
- ``high_answer``: the answer written is 5 or more (same idea, another direction);
- ``well_formed``: every step parses and the answer is a digit.

Every scorer returns a bool; an unparseable answer is neither even nor high.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .problems import _MARKS, _STEP_RE, STEP_SEP, Problem, parse_prompt, verify


@dataclass(frozen=True)
class Attribute:
    """A named exact scorer of (problem, solution) with a one-line description."""

    name: str
    description: str
    fn: Callable[[Problem, str], bool]


def _correct(problem: Problem, response: str) -> bool:
    return verify(problem, response).is_correct


def _error_free(problem: Problem, response: str) -> bool:
    v = verify(problem, response)
    return v.is_correct and v.well_formed and v.first_error_step is None


def _even_answer(problem: Problem, response: str) -> bool:
    a = verify(problem, response).answer
    return a is not None and a % 2 == 0


def _high_answer(problem: Problem, response: str) -> bool:
    a = verify(problem, response).answer
    return a is not None and a >= 5


def _well_formed(problem: Problem, response: str) -> bool:
    return verify(problem, response).well_formed


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    Attribute("correct", "the final answer is right", _correct),
    Attribute("error_free", "every step is right (and so is the answer)", _error_free),
    Attribute("even_answer", "the written answer is an even digit", _even_answer),
    Attribute("high_answer", "the written answer is 5 or more", _high_answer),
    Attribute("well_formed", "every step parses and the answer is a digit", _well_formed),
)}


def score_attributes(prompt: str, response: str, names: list[str] | None = None) -> dict[str, bool]:
    """Exact scores of `response` to the toy question `prompt` for the attributes `names` (default: all).

    Raises ValueError naming the prompt when it is not a toy-world question, KeyError naming the attribute when
    an attribute is unknown."""
    problem = parse_prompt(prompt)
    out = {}
    for name in names or list(ATTRIBUTES):
        if name not in ATTRIBUTES:
            raise KeyError(f"unknown toy attribute {name!r}; known: {sorted(ATTRIBUTES)}")
        out[name] = bool(ATTRIBUTES[name].fn(problem, response))
    return out


def prefix_error_free(problem: Problem, partial: str, finished: bool) -> bool:
    """Whether every step written so far is right: `partial` is a solution prefix made of whole steps (each ending
    with the delimiter), or, when `finished`, a whole solution (then its answer must be right too). This is the
    exact process label a perfect step-level value would know."""
    if finished:
        v = verify(problem, partial)
        return v.is_correct and v.well_formed and v.first_error_step is None
    parts = partial.split(STEP_SEP)[:-1]  # whole steps only; anything after the last delimiter is not a step yet
    values = problem.values()
    for i, step in enumerate(parts):
        m = _STEP_RE.match(step.rstrip(_MARKS))
        if not m or i >= len(problem.steps):
            return False
        v, op, d, r = int(m[1]), m[2], int(m[3]), int(m[4])
        if (v, op, d, r) != (values[i], *problem.steps[i], values[i + 1]):
            return False
    return True
