"""Solutions labelled step by step, read and written in two public formats: ProcessBench's (Zheng et al. 2024) and TRL's
stepwise supervision (the format of its PRMTrainer).

- `processbench` adapter: rows {id, problem, steps: [str, ...], label: int[, generator, final_answer_correct]},
  `label` being the index (0-based) of the first wrong step, -1 when every step is right;
- `trl_stepwise` adapter: rows {prompt, completions: [str, ...], labels: [bool, ...]}, one label per step (true:
  the step is right);
- `write_processbench(records, predictions, path)`: the records in ProcessBench's format with a reader's predicted
  first wrong step per solution ("prediction", "match", optionally per-step "step_scores");
- `write_trl_stepwise(records, path)`: the records in TRL's format.

Both adapters give `GenerationRecord`s: prompt = the problem, response = the steps joined by `STEP_JOIN` (a blank
line, as ProcessBench's solutions were split into paragraphs; a step may itself hold line breaks, so the steps are
kept as they are in meta "steps"), is_correct = every step is right (label -1), answer None (no vote is read from a
solution here), and meta "steps", "label" (ProcessBench's label, for TRL rows the first step labelled false), for
ProcessBench "id" (null when the row has none) and the optional fields, for TRL "step_labels".

Bad rows are errors naming the file, row (line) and key, and nothing is read from them: steps that are missing, not
a list of strings, an empty list, or hold an empty (or blank) step; a ProcessBench label that is missing, not an
integer (3.0 counts as 3, as a column with any fraction holds integers) or outside the steps (< -1 or >= the number
of steps); TRL labels that are missing, not a list, not one per step, or not JSON booleans (never 1/0 or text).
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real
from pathlib import Path
from typing import Sequence

from ..data import GenerationRecord
from ..io import atomic_write_text
from .loading import require_columns
from .rows import Adapted, Row, Rows, _shown

#: What joins a solution's steps into a record's response.
STEP_JOIN = "\n\n"


def first_wrong_step(step_labels: Sequence[bool]) -> int:
    """Index of the first step labelled false (wrong), -1 when every step is right."""
    return next((i for i, ok in enumerate(step_labels) if not ok), -1)


# ------------------------------------------------------------------------------------------------ checked fields


def _steps(row: Row, key: str) -> list[str]:
    """Field `key` as a non-empty list of steps, each a string with text."""
    v = row.get(key)
    if v is None:
        raise row.error(key, "is missing or null; every row needs its steps as a list of strings")
    if not isinstance(v, list):
        raise row.error(key, f"must be a list of strings (the solution's steps), got {_shown(v)}")
    if not v:
        raise row.error(key, "is an empty list; every solution needs at least one step")
    for i, s in enumerate(v):
        if s is None:
            raise row.error(f"{key}[{i}]", "is null; every step needs text")
        if not isinstance(s, str):
            raise row.error(f"{key}[{i}]", f"must be a string, got {_shown(s)}")
        if not s.strip():
            raise row.error(f"{key}[{i}]", f"is an empty step ({s!r}); every step needs text")
    return list(v)


def _label(row: Row, key: str, n_steps: int) -> int:
    """Field `key` as ProcessBench's label: -1 or a step index below `n_steps`."""
    v = row.get(key)
    if v is None:
        raise row.error(key, "is missing or null; every row needs the index of its first wrong step (-1: every step "
                             "is right)")
    whole = isinstance(v, Integral) or (isinstance(v, float) and v.is_integer())
    if isinstance(v, bool) or not whole:
        raise row.error(key, f"must be an integer, the index of the first wrong step (-1: every step is right), got "
                             f"{_shown(v)}")
    if not -1 <= v < n_steps:
        raise row.error(key, f"is {int(v)}, outside the solution's {n_steps} steps; it must be -1 (every step is "
                             f"right) or a step index from 0 to {n_steps - 1}")
    return int(v)


def _step_labels(row: Row, key: str, steps_key: str, n_steps: int) -> list[bool]:
    """Field `key` as one true/false label per step of `steps_key` (`n_steps` of them)."""
    v = row.get(key)
    if v is None:
        raise row.error(key, "is missing or null; every row needs one true/false label per step")
    if not isinstance(v, list):
        raise row.error(key, f"must be a list of true/false labels, one per step, got {_shown(v)}")
    if len(v) != n_steps:
        raise row.error(key, f"has {len(v)} labels for the {n_steps} steps in {steps_key!r}; give one true/false "
                             "label per step")
    for i, ok in enumerate(v):
        if not isinstance(ok, bool):
            raise row.error(f"{key}[{i}]", f"must be true or false, got {_shown(ok)}: step labels are JSON "
                                           "booleans, never numbers or text")
    return list(v)


def _id(row: Row, key: str) -> str | int | None:
    v = row.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (str, Integral))):
        raise row.error(key, f"must be a string or an integer (the solution's id), got {_shown(v)}")
    return v


# ------------------------------------------------------------------------------------------------ adapters


def processbench_records(ds, spec) -> Adapted:
    """ProcessBench rows (id, problem, steps, label[, generator, final_answer_correct]) -> records (see the module
    docstring); "generator" (a string) and "final_answer_correct" (true/false or 1/0) go to meta when present."""
    require_columns(ds, ["problem", "steps", "label"], spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        steps = _steps(row, "steps")
        label = _label(row, "label", len(steps))
        meta = {"steps": steps, "label": label, "id": _id(row, "id"), "source": spec.source}
        if row.get("generator") is not None:
            meta["generator"] = row.text("generator")
        if row.get("final_answer_correct") is not None:
            meta["final_answer_correct"] = row.label("final_answer_correct")
        out.append(GenerationRecord(row.text("problem"), STEP_JOIN.join(steps), label == -1, None, meta))
    return rows.result(out)


def trl_stepwise_records(ds, spec) -> Adapted:
    """TRL stepwise-supervision rows (prompt, completions, labels) -> records (see the module docstring)."""
    require_columns(ds, ["prompt", "completions", "labels"], spec)
    rows, out = Rows(ds, spec), []
    for row in rows:
        steps = _steps(row, "completions")
        labels = _step_labels(row, "labels", "completions", len(steps))
        meta = {"steps": steps, "step_labels": labels, "label": first_wrong_step(labels), "source": spec.source}
        out.append(GenerationRecord(row.text("prompt"), STEP_JOIN.join(steps), all(labels), None, meta))
    return rows.result(out)


# ------------------------------------------------------------------------------------------------ writers


def _record_steps(r: GenerationRecord, i: int) -> list[str]:
    steps = r.meta.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ValueError(f"record {i}: meta 'steps' must be a non-empty list of steps with text, got {steps!r:.80}")
    return steps


def _step_index(v, what: str, n_steps: int) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral) or not -1 <= v < n_steps:
        raise ValueError(f"{what} must be -1 (every step is right) or a step index from 0 to {n_steps - 1}, got "
                         f"{v!r}")
    return int(v)


def _record_step_labels(r: GenerationRecord, i: int, n_steps: int) -> list[bool]:
    """The record's meta "step_labels" when it has them, else the labels its meta "label" implies: right before the
    first wrong step, wrong from it on (a solution that has gone wrong stays on a wrong path)."""
    labels = r.meta.get("step_labels")
    if labels is not None:
        if not isinstance(labels, list) or len(labels) != n_steps or not all(isinstance(x, bool) for x in labels):
            raise ValueError(f"record {i}: meta 'step_labels' must be one true/false label for each of its {n_steps} "
                             f"steps, got {labels!r:.80}")
        return list(labels)
    if "label" not in r.meta:
        raise ValueError(f"record {i}: meta has neither 'step_labels' nor 'label' (the first wrong step, -1: none)")
    k = _step_index(r.meta["label"], f"record {i}: meta 'label'", n_steps)
    return [True] * n_steps if k < 0 else [True] * k + [False] * (n_steps - k)


def write_processbench(records: Sequence[GenerationRecord], predictions: Sequence[int], path: str | Path,
                       step_scores: Sequence[Sequence[float]] | None = None) -> Path:
    """Write `records` (meta "steps" and "label", as the adapters and `process.toy_processbench_records` give them)
    as ProcessBench JSON lines, atomically, each with the reader's "prediction" (predictions: one first wrong step or
    -1 per record), "match" (prediction == label) and, when given, "step_scores" (one finite score per step). A
    line holds id (meta "id", else the record's index), problem, steps, label, generator and final_answer_correct
    when meta has them, then those fields; the `processbench` adapter reads the file back. Raises ValueError naming
    the record for a count, step, label, prediction or score that does not fit. Returns the path."""
    if len(predictions) != len(records):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} records; give one per record")
    if step_scores is not None and len(step_scores) != len(records):
        raise ValueError(f"step scores for {len(step_scores)} records, not {len(records)}; give one list per record")
    lines = []
    for i, r in enumerate(records):
        steps = _record_steps(r, i)
        if "label" not in r.meta:
            raise ValueError(f"record {i}: meta has no 'label' (the first wrong step, -1: none)")
        label = _step_index(r.meta["label"], f"record {i}: meta 'label'", len(steps))
        pred = _step_index(predictions[i], f"record {i}: prediction", len(steps))
        ident = r.meta.get("id")
        obj = {"id": i if ident is None else ident, "problem": r.prompt, "steps": steps, "label": label}
        obj.update({k: r.meta[k] for k in ("generator", "final_answer_correct") if r.meta.get(k) is not None})
        obj.update(prediction=pred, match=pred == label)
        if step_scores is not None:
            obj["step_scores"] = _finite_scores(step_scores[i], i, len(steps))
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return atomic_write_text(path, "".join(lines))


def _finite_scores(scores, i: int, n_steps: int) -> list[float]:
    s = list(scores)
    if len(s) != n_steps or not all(isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x) for x in s):
        raise ValueError(f"record {i}: step scores must be {n_steps} finite numbers, one per step, got {s!r:.80}")
    return [float(x) for x in s]


def write_trl_stepwise(records: Sequence[GenerationRecord], path: str | Path, after_error: str = "false") -> Path:
    """Write `records` (meta "steps" and "step_labels" or "label") as TRL stepwise-supervision JSON lines
    {prompt, completions, labels}, atomically; the `trl_stepwise` adapter reads the file back. A record with only
    a first wrong step ("label") labels the steps before it true and it false; `after_error` says what follows it:
    "false" keeps the later steps labelled false (as Math-Shepherd labels a prefix that can no longer reach the
    answer), "drop" ends the completion at the first wrong step (as PRM800K's raters stop at it). Raises ValueError
    naming the record for steps or labels that do not fit. Returns the path."""
    if after_error not in ("false", "drop"):
        raise ValueError(f"after_error must be 'false' or 'drop', got {after_error!r}")
    lines = []
    for i, r in enumerate(records):
        steps = _record_steps(r, i)
        labels = _record_step_labels(r, i, len(steps))
        k = first_wrong_step(labels)
        if after_error == "drop" and k >= 0:
            steps, labels = steps[:k + 1], labels[:k + 1]
        lines.append(json.dumps({"prompt": r.prompt, "completions": steps, "labels": labels}, ensure_ascii=False)
                     + "\n")
    return atomic_write_text(path, "".join(lines))
