"""Adapters that read generation records with a correctness label: `records` (prompt / response / is_correct),
`openmathinstruct_records`, `gsm8k_model_solutions`, and `helpsteer` (ratings; helpsteer_sets groups them).

Each takes (rows from `load_rows`, the DatasetSpec) and returns an `Adapted` list of `GenerationRecord`s. A row
without a prompt, a response or a correctness label, or with one of the wrong type, is a DataError naming the file,
row and key (see `rows`); empty responses are kept (screening counts them as "empty response").
"""

from __future__ import annotations

from ..data import DataError, GenerationRecord
from .answers import extract_answer
from .loading import require_columns
from .rows import Adapted, Rows


def openmathinstruct_records(ds, spec) -> Adapted:
    """OpenMathInstruct-1 rows (question, generated_solution, is_correct[, predicted_answer, expected_answer,
    dataset]) -> records. A record's `answer` is the solution's own (`predicted_answer`), what a majority vote counts;
    the reference (`expected_answer`) goes to `meta["reference"]`."""
    rows = Rows(ds, spec)
    return rows.result(read_openmathinstruct(rows, skip_empty=False))


def read_openmathinstruct(rows: Rows, skip_empty: bool) -> list[GenerationRecord]:
    """`openmathinstruct_records`' records from `rows`; `skip_empty` leaves out (and counts) empty solutions."""
    require_columns(rows.ds, ["question", "generated_solution", "is_correct"], rows.spec)
    out = []
    for row in rows:
        rec = GenerationRecord(prompt=row.text("question"), response=row.text("generated_solution"),
                               is_correct=row.label("is_correct"), answer=row.answer("predicted_answer"),
                               meta={"source": rows.spec.source, "dataset": row.data.get("dataset"),
                                     "reference": row.answer("expected_answer")})
        if skip_empty and not rec.response:
            row.skip("empty 'generated_solution'")
            continue
        out.append(rec)
    return out


def generic_records(ds, spec) -> Adapted:
    """Rows (prompt, response, is_correct[, answer, meta]) -> records. `is_correct` is true/false (or 1/0), `answer`
    a string or number (null: no answer), `meta` an object."""
    require_columns(ds, ["prompt", "response", "is_correct"], spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        out.append(GenerationRecord(row.text("prompt"), row.text("response"), row.label("is_correct"),
                                    row.answer("answer"), row.mapping("meta")))
    return rows.result(out)


GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def gsm8k_model_solutions(ds, spec) -> Adapted:
    """OpenAI grade-school-math model samples: a row per question with `ground_truth` and one {is_correct,
    solution} column per model -> one record per solution, the model in meta. A null model column (that model has
    no sample for the question) is left out and counted; a sample without `is_correct` or `solution` is an error."""
    require_columns(ds, ["question", "ground_truth"], spec)
    solvers = [c for c in ds.column_names if c in GSM8K_SOLVERS]
    if not solvers:
        raise DataError(f"{spec.source}: missing column(s) {list(GSM8K_SOLVERS)} (model solutions) for adapter "
                        f"{spec.adapter!r}; columns present: {ds.column_names}")
    rows, out = Rows(ds, spec), []
    for row in rows:
        question = row.text("question")
        ref = extract_answer(row.text("ground_truth"))
        for s in solvers:
            sol = row.nested(s)
            if sol is None:
                row.skip(f"no {s!r} solution")
                continue
            out.append(GenerationRecord(question, sol.text("solution"), sol.label("is_correct"), ref,
                                        {"question_id": row.index, "model": s}))
    return rows.result(out)


HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def helpsteer_records(ds, spec) -> Adapted:
    """HelpSteer rows (prompt, response, five integer ratings 0-4) -> records with the ratings in meta (is_correct:
    the response's correctness rating is at least 3). A rating that is not an integer from 0 to 4 is an error."""
    require_columns(ds, ["prompt", "response", *HELPSTEER_ATTRIBUTES], spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        ratings = {a: row.rating(a, 0, 4) for a in HELPSTEER_ATTRIBUTES}
        out.append(GenerationRecord(row.text("prompt"), row.text("response"), ratings["correctness"] >= 3, None,
                                    ratings))
    return rows.result(out)


def helpsteer_sets(records: list[GenerationRecord], attribute: str, high: int = 4, low: int = 1
                   ) -> dict[str, list[GenerationRecord]]:
    """Labelled sets for a goal prototype: responses rated >= `high` on `attribute` and those rated <= `low`."""
    if attribute not in HELPSTEER_ATTRIBUTES:
        raise ValueError(f"unknown HelpSteer attribute {attribute!r}; known: {list(HELPSTEER_ATTRIBUTES)}")
    return {"high": [r for r in records if r.meta[attribute] >= high],
            "low": [r for r in records if r.meta[attribute] <= low]}
