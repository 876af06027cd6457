"""Checked reading of an adapter's rows: typed fields, or a `DataError` naming the file, row and key; rows left out
are counted by reason.

Every adapter reads its rows through `Rows`: a field that is missing, null or of the wrong type where the kit needs
it (a prompt, a response, a correctness label, a rating, a reference answer) is an error naming where it sits and
what was found; nothing is coerced. A row an adapter cannot use for a stated reason (an HH-RLHF pair whose
dialogues cannot be split, a model that has no solution for a question) is left out, counted in the returned
list's `stats` and logged with its first row numbers.

Correctness labels are JSON booleans; the numbers 1 and 0 are taken as true and false (CSV and Parquet files often
store labels so). Strings such as "yes" or "incorrect" are errors: a label read wrongly would enter every AUROC.
"""

from __future__ import annotations

import logging
from collections import Counter
from numbers import Integral, Real

from ..data import DataError
from .loading import raw_columns, row_place, row_places

log = logging.getLogger(__name__)

#: Rows shown per reason when rows are left out.
EXAMPLES_SHOWN = 5


class Adapted(list):
    """The records an adapter read (a plain list of them), with the adapter's counts in `stats`: every adapter's
    `skipped_rows` (how many rows, or for gsm8k_model_solutions solutions, it left out) and `skipped` ({reason:
    n}), and for openmathinstruct `pair_records`' counts. Slices and other lists made from it are plain lists
    without `stats`."""

    def __init__(self, items=(), stats: dict | None = None):
        super().__init__(items)
        self.stats = dict(stats or {})


def _shown(v) -> str:
    """A value as a message shows it: its type and a short repr."""
    r = repr(v)
    return f"{type(v).__name__} {r if len(r) <= 60 else r[:57] + '...'}"


def _has_json(feature) -> bool:
    """Whether a `datasets` feature is, or holds, a JSON column (one whose values differ in kind)."""
    import datasets  # heavy, and only needed once rows have been loaded with it

    if isinstance(feature, datasets.Json):
        return True
    if isinstance(feature, dict):
        return any(_has_json(f) for f in feature.values())
    if isinstance(feature, (list, tuple)):
        return any(_has_json(f) for f in feature)
    return _has_json(feature.feature) if hasattr(feature, "feature") else False


class Row:
    """One row of a data set, with getters that check a field's type. `prefix` names the enclosing field for a
    nested object (e.g. "6b_finetuning.")."""

    def __init__(self, data, index: int, rows: "Rows", prefix: str = ""):
        self.data, self.index, self.rows, self.prefix = data, index, rows, prefix

    def error(self, key: str, problem: str) -> DataError:
        """A DataError "<file>, row n (line l): key 'k' <problem>"."""
        return DataError(f"{row_place(self.rows.spec, self.index)}: key {self.prefix + key!r} {problem}")

    def get(self, key: str):
        """Field `key` as the source holds it (None when absent): read from the file where `datasets` made its
        column a JSON column (see `loading.raw_columns`)."""
        if not self.prefix and key in self.rows.mixed:
            raw = self.rows.raw(key)
            if raw is not None:
                return raw[self.index]
        return self.data.get(key) if isinstance(self.data, dict) else None

    def _value(self, key: str, what: str):
        v = self.get(key)
        if v is None:
            raise self.error(key, f"is missing or null; {what}")
        return v

    def text(self, key: str) -> str:
        """Field `key` as a string (empty allowed: later screening counts empty responses); an error when it is
        missing, null or not a string."""
        v = self._value(key, "every row needs it as a string")
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {_shown(v)}")
        return v

    def label(self, key: str) -> bool:
        """Field `key` as a correctness label: true/false, or the numbers 1/0; anything else is an error."""
        v = self._value(key, "every row needs a correctness label (true or false)")
        if isinstance(v, bool):
            return v
        if isinstance(v, Real) and v in (0, 1):  # 1.0 too: a column of 1/0 with any fraction reads as floats
            return bool(v)
        text = ": labels are never read from text" if isinstance(v, str) else ""
        raise self.error(key, f"must be true or false (or 1 or 0), got {_shown(v)}{text}")

    def answer(self, key: str, required: bool = False) -> str | None:
        """Field `key` as an answer string: a string, or a number written as a string; null gives None unless
        `required` (a reference answer is a problem's label). A boolean, list or object is an error."""
        v = self.get(key)
        if v is None:
            if required:
                raise self.error(key, "is missing or null; every problem needs a reference answer")
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, Real) and not isinstance(v, bool):
            return str(v)
        raise self.error(key, f"must be a string or a number, got {_shown(v)}")

    def rating(self, key: str, low: int, high: int) -> int:
        """Field `key` as an integer rating in [low, high] (3.0 counts as 3); anything else (a string, a fraction,
        a boolean, out of range) is an error."""
        v = self._value(key, f"every row needs it as an integer rating from {low} to {high}")
        whole = isinstance(v, Integral) or (isinstance(v, float) and v.is_integer())  # 3.0: as a float column holds 3
        if whole and not isinstance(v, bool) and low <= v <= high:
            return int(v)
        raise self.error(key, f"must be an integer rating from {low} to {high}, got {_shown(v)}")

    def mapping(self, key: str) -> dict:
        """Field `key` as a dict; null gives {}; anything else is an error."""
        v = self.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self.error(key, f"must be an object (null: none), got {_shown(v)}")
        return dict(v)

    def nested(self, key: str) -> "Row | None":
        """The object in field `key` as a Row whose messages name "key.field"; None when it is null or absent."""
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(key, f"must be an object (null: none), got {_shown(v)}")
        return Row(v, self.index, self.rows, f"{self.prefix}{key}.")

    def skip(self, reason: str) -> None:
        """Leave this row out, counted under `reason`."""
        self.rows.skip(self.index, reason)


class Rows:
    """The rows of `ds` (a `datasets.Dataset` from `load_rows(spec)`) for an adapter: iterate for `Row`s, leave
    rows out with `Row.skip`, and wrap the records read with `result`."""

    def __init__(self, ds, spec):
        self.ds, self.spec = ds, spec
        self.skipped: Counter = Counter()
        self.examples: dict[str, list[int]] = {}
        # columns `datasets` read as JSON because their values differ in kind: typed fields are read from the file
        self.mixed = {name for name, f in (ds.features or {}).items() if _has_json(f)}
        self._raw: dict[str, list] | None = None

    def raw(self, key: str) -> list | None:
        """Column `key` as the file holds it (`loading.raw_columns`); None when the source is not a local JSON file
        (a folder or hub dataset: its decoded values are used) or the file's rows do not line up with `ds`'s."""
        if self._raw is None:
            raw = raw_columns(self.spec, sorted(self.mixed)) or {}
            self._raw = {k: v for k, v in raw.items() if len(v) == len(self.ds)}
        return self._raw.get(key)

    def __iter__(self):
        for i, data in enumerate(self.ds):
            yield Row(data, i, self)

    def skip(self, index: int, reason: str) -> None:
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_SHOWN:
            shown.append(index)

    def result(self, items, counts: dict | None = None) -> Adapted:
        """`items` as an `Adapted` list whose stats hold `counts` and the rows left out ({"skipped_rows": n,
        "skipped": {reason: n}}); rows left out are logged as a warning with the first row numbers per reason."""
        n = sum(self.skipped.values())
        if n:
            log.warning("%s: the %s adapter left out %d, by reason: %s", self.spec.source, self.spec.adapter, n,
                        self.describe())
        return Adapted(items, {**(counts or {}), "skipped_rows": n, "skipped": dict(self.skipped)})

    def describe(self) -> str:
        """The rows left out by reason, with the first rows of each: "identical dialogues: 2 [row 4 (line 4),
        row 9 (line 9)]"."""
        parts = []
        for reason, n in self.skipped.most_common():
            idx = self.examples[reason]
            places = ", ".join(row_places(self.spec, idx, source=False))
            parts.append(f"{reason}: {n} [{places}{', ...' if n > len(idx) else ''}]")
        return "; ".join(parts)
