"""Adapters that read benchmark problems (a question and its reference answer; the backbone answers them and
`answers_match` labels the answers): `gsm8k`, `math`, `gsm_hard`, `svamp`, `asdiv`, and `qa` (question /
expected_answer, the format of the algebra222, MAWPS and other OOD sets in NeMo-Skills).

Each takes (rows from `load_rows`, the DatasetSpec) and returns an `Adapted` list of `GenerationRecord`s (the
reference answer in `answer`, the reference solution, when there is one, in `response`, `is_correct` True). The
reference answer labels every answer given to the problem, so a row without one, or whose solution states none, is
a DataError naming the file, row and key, as is a question that is missing or not a string.
"""

from __future__ import annotations

from typing import Callable

from ..data import GenerationRecord
from .answers import extract_answer, extract_boxed
from .loading import require_columns
from .rows import Adapted, Row, Rows


def _problems(ds, spec, columns: tuple[str, ...], read: Callable[[Row], tuple[str, str, str]]) -> Adapted:
    """Problems from rows; `read(row)` gives (question, reference answer, reference solution or "")."""
    require_columns(ds, list(columns), spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        question, answer, solution = read(row)
        out.append(GenerationRecord(prompt=question, response=solution, is_correct=True, answer=answer,
                                    meta={"question_id": row.index, "kind": "problem", "source": spec.source}))
    return rows.result(out)


def _stated(row: Row, key: str, extract: Callable[[str], str | None], form: str) -> tuple[str, str]:
    """(the solution in `key`, the answer `extract` finds in it); an error naming `form` when it finds none."""
    solution = row.text(key)
    answer = extract(solution)
    if answer is None:
        raise row.error(key, f"states no final answer ({form}); every problem needs a reference answer")
    return answer, solution


def gsm8k_problems(ds, spec) -> Adapted:
    """GSM8K (question, answer ending in "#### x") -> problems with the reference solution and answer."""
    return _problems(ds, spec, ("question", "answer"),
                     lambda r: (r.text("question"), *_stated(r, "answer", extract_answer, "'#### x' or a number")))


def math_problems(ds, spec) -> Adapted:
    """MATH (problem, solution with \\boxed{answer}) -> problems."""
    return _problems(ds, spec, ("problem", "solution"),
                     lambda r: (r.text("problem"), *_stated(r, "solution", extract_boxed, "\\boxed{...}")))


def gsm_hard_problems(ds, spec) -> Adapted:
    """GSM-Hard (input, target number) -> problems."""
    return _problems(ds, spec, ("input", "target"),
                     lambda r: (r.text("input"), r.answer("target", required=True), ""))


def svamp_problems(ds, spec) -> Adapted:
    """SVAMP (Body, Question, Answer number) -> problems whose question is the body and the question."""
    return _problems(ds, spec, ("Body", "Question", "Answer"),
                     lambda r: (f"{r.text('Body').strip()} {r.text('Question').strip()}",
                                r.answer("Answer", required=True), ""))


def asdiv_problems(ds, spec) -> Adapted:
    """ASDiv (body, question, answer such as "9 (apples)") -> problems; the number is the answer."""
    return _problems(ds, spec, ("body", "question", "answer"),
                     lambda r: (f"{r.text('body').strip()} {r.text('question').strip()}",
                                r.answer("answer", required=True).split(" (")[0], ""))


def qa_problems(ds, spec) -> Adapted:
    """Question / expected_answer rows (NeMo-Skills' evaluation sets) -> problems."""
    return _problems(ds, spec, ("question", "expected_answer"),
                     lambda r: (r.text("question"), r.answer("expected_answer", required=True), ""))
