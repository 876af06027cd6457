"""Multi-step modular-arithmetic problems, their step-by-step solutions, and an exact verifier.

A problem is a start digit followed by a chain of operations, each applied modulo 10::

    question (symbolic wording):  7+3*2-5?
    question (verbal wording):    7 plus 3 times 2 minus 5?
    solution:                     7+3=0;0*2=0;0-5=5;A:5

Every step of a solution restates the running value, the operation and the operand, so a verifier can say
exactly which step is the first wrong one. That is what lets the kit check whether a Q-value curve drops
where the error really is, something real math data cannot give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

#: operator symbol -> (word used by the verbal wording, function of (value, operand)).
OPERATORS: dict[str, tuple[str, callable]] = {
    "+": ("plus", lambda v, d: (v + d) % 10),
    "-": ("minus", lambda v, d: (v - d) % 10),
    "*": ("times", lambda v, d: (v * d) % 10),
    "%": ("mod", lambda v, d: v % d),
}
WORDINGS = ("symbolic", "verbal")
PROMPT_END = "?"
STEP_SEP = ";"
ANSWER_PREFIX = "A:"


@dataclass(frozen=True)
class Problem:
    """One problem: a start digit and a chain of (operator, operand) steps, with the words used to ask it."""

    start: int
    steps: tuple[tuple[str, int], ...]
    wording: str = "symbolic"

    @property
    def prompt(self) -> str:
        """The question as the model reads it, ending with '?'."""
        if self.wording == "symbolic":
            body = str(self.start) + "".join(f"{op}{d}" for op, d in self.steps)
        elif self.wording == "verbal":
            body = " ".join([str(self.start)] + [f"{OPERATORS[op][0]} {d}" for op, d in self.steps])
        else:
            raise ValueError(f"unknown wording {self.wording!r}; expected one of {WORDINGS}")
        return body + PROMPT_END

    def values(self) -> list[int]:
        """The exact running values: [start, after step 1, ..., answer]."""
        out = [self.start]
        for op, d in self.steps:
            out.append(OPERATORS[op][1](out[-1], d))
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def solution(self) -> str:
        """The correct step-by-step solution text (no marks)."""
        vals = self.values()
        steps = [f"{vals[i]}{op}{d}={vals[i + 1]}" for i, (op, d) in enumerate(self.steps)]
        return STEP_SEP.join(steps + [f"{ANSWER_PREFIX}{vals[-1]}"])


@dataclass
class Verdict:
    """What the verifier says of one solution.

    `first_error_step` is the index of the first wrong step (None when every step is right);
    `first_error_char` is the character offset of that step's start within the solution text, which tokenisers
    map to a token position. `is_correct` is about the final answer alone, as in the paper's labels.
    """

    is_correct: bool
    well_formed: bool
    answer: int | None
    first_error_step: int | None
    first_error_char: int | None
    n_steps: int
    notes: list[str] = field(default_factory=list)


_STEP_RE = re.compile(r"^(\d)([+\-*%])(\d)=(\d)$")
_MARKS = "!"  # correction marks may appear in the base corpus; the verifier ignores them


def verify(problem: Problem, solution: str) -> Verdict:
    """Check `solution` against `problem` step by step.

    A step is wrong when its value is not the running value of the problem's own chain at that point, its
    operator/operand differ from the question's, or its result is not what its own operation gives. Missing or
    extra steps count as wrong at the first place they differ. An answer that cannot be parsed is incorrect.
    """
    parts = solution.split(STEP_SEP)
    truth = problem.values()
    first_err: int | None = None
    first_err_char: int | None = None
    offset = 0
    notes: list[str] = []
    well_formed = True
    step_parts, answer_part = parts[:-1], parts[-1]
    for i, raw in enumerate(step_parts):
        step = raw.rstrip(_MARKS)
        m = _STEP_RE.match(step)
        wrong = False
        if not m:
            wrong, well_formed = True, False
            notes.append(f"step {i} unparseable: {raw!r}")
        elif i >= len(problem.steps):
            wrong = True
            notes.append(f"extra step {i}")
        else:
            v, op, d, r = int(m[1]), m[2], int(m[3]), int(m[4])
            exp_op, exp_d = problem.steps[i]
            if v != truth[i] or op != exp_op or d != exp_d or r != truth[i + 1]:
                wrong = True
        if wrong and first_err is None:
            first_err, first_err_char = i, offset
        offset += len(raw) + len(STEP_SEP)
    if len(step_parts) < len(problem.steps) and first_err is None:
        first_err, first_err_char = len(step_parts), offset
        notes.append("missing steps")
    answer: int | None = None
    if answer_part.startswith(ANSWER_PREFIX) and answer_part[len(ANSWER_PREFIX):].isdigit():
        answer = int(answer_part[len(ANSWER_PREFIX):])
    else:
        well_formed = False
        notes.append(f"answer unparseable: {answer_part!r}")
    return Verdict(
        is_correct=answer == problem.answer,
        well_formed=well_formed,
        answer=answer,
        first_error_step=first_err,
        first_error_char=first_err_char,
        n_steps=len(step_parts),
        notes=notes,
    )


def parse_prompt(prompt: str) -> Problem:
    """Inverse of `Problem.prompt`: read a question back (either wording). Raises ValueError naming the text."""
    body = prompt[:-1] if prompt.endswith(PROMPT_END) else prompt
    words = {w: op for op, (w, _) in OPERATORS.items()}
    if " " in body:
        toks = body.split(" ")
        if len(toks) < 1 or len(toks) % 2 != 1 or not toks[0].isdigit():
            raise ValueError(f"cannot parse verbal question {prompt!r}")
        steps = []
        for w, d in zip(toks[1::2], toks[2::2]):
            if w not in words or not d.isdigit():
                raise ValueError(f"cannot parse verbal question {prompt!r}: bad step {w} {d}")
            steps.append((words[w], int(d)))
        return Problem(int(toks[0]), tuple(steps), "verbal")
    if not re.fullmatch(r"\d([+\-*%]\d)+", body):
        raise ValueError(f"cannot parse symbolic question {prompt!r}")
    steps = tuple((body[i], int(body[i + 1])) for i in range(1, len(body), 2))
    return Problem(int(body[0]), steps, "symbolic")


@dataclass(frozen=True)
class SplitSpec:
    """A distribution of problems: number of steps, allowed operators, which must appear, and the wording.

    `operator_weights` (one weight per character of `operators`; None: uniform) makes some operators more frequent,
    as a hard split makes the features that invite misconceptions (toyworld.misconceptions) more frequent."""

    min_steps: int
    max_steps: int
    operators: str = "+-*"
    required_operator: str | None = None
    wording: str = "symbolic"
    operator_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        w = self.operator_weights
        if w is not None and (len(w) != len(self.operators) or min(w) < 0 or sum(w) <= 0):
            raise ValueError(f"operator_weights {w}: need one weight >= 0 per operator of {self.operators!r}, "
                             "not all zero")


#: The in-distribution split the reward models are trained on, and out-of-distribution splits in the spirit of
#: the paper's (a generator that knows all of them, a reward model trained on one). See README "The toy world".
SPLITS: dict[str, SplitSpec] = {
    "id": SplitSpec(3, 5, "+-*"),
    "short_chain": SplitSpec(1, 2, "+-*"),
    "long_chain": SplitSpec(6, 7, "+-*"),
    "new_operator": SplitSpec(3, 5, "+-*%", required_operator="%"),
    "verbal": SplitSpec(3, 5, "+-*", wording="verbal"),
    # graded difficulty: longer chains in which `+` and `-`, the operators whose misconceptions bite on about half
    # of all inputs, make up 90% of the steps; with misconceptions on (WorldParams.misconception_rates) most samples
    # are wrong, as most samples are on a hard benchmark such as MATH. Used by no default.
    "hard": SplitSpec(6, 8, "+-*", operator_weights=(0.45, 0.45, 0.1)),
}


def sample_problem(rng: np.random.Generator, spec: SplitSpec) -> Problem:
    """Draw one problem from `spec`. Operands are 1-9 (0 would make '*' and '%' degenerate)."""
    n = int(rng.integers(spec.min_steps, spec.max_steps + 1))
    if spec.operator_weights is None:
        ops = [spec.operators[int(rng.integers(len(spec.operators)))] for _ in range(n)]
    else:
        p = np.asarray(spec.operator_weights, dtype=float)
        ops = [spec.operators[int(rng.choice(len(spec.operators), p=p / p.sum()))] for _ in range(n)]
    if spec.required_operator and spec.required_operator not in ops:
        ops[int(rng.integers(n))] = spec.required_operator
    steps = tuple((op, int(rng.integers(1, 10)) if op != "%" else int(rng.integers(2, 10))) for op in ops)
    return Problem(int(rng.integers(10)), steps, spec.wording)


def sample_problems(rng: np.random.Generator, spec: SplitSpec, n: int) -> list[Problem]:
    return [sample_problem(rng, spec) for _ in range(n)]
