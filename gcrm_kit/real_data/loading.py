"""Rows of a data set through Hugging Face `datasets`, and where each row sits in its source.

`load_rows(spec)` reads a `params.DatasetSpec`'s source: a local file (JSON lines, optionally gzipped, JSON,
Parquet, CSV), a local folder (saved with `save_to_disk`, or of data files whose names say the splits), or a hub
dataset id. `row_place(spec, i)` words where row `i` of those rows sits ("<file>, row 3 (line 3)"), so an adapter's
error can name the file, row and key. A JSON file that does not parse is a `DataError` naming the file and line.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..data import DataError
from ..io import project_root

LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet", ".csv": "csv"}


def local_path(spec) -> Path | None:
    """The local file or folder `spec.source` names, relative paths also tried against the project root (papermill
    runs notebooks from notebooks/); None when nothing by that name exists here (a hub id, or a missing file)."""
    path = Path(spec.source).expanduser()
    if not path.is_absolute() and (project_root() / path).exists():
        path = project_root() / path
    return path if path.exists() else None


def load_rows(spec):
    """The rows of `spec` (a DatasetSpec) as a `datasets.Dataset`, first `spec.limit` rows when set.

    A source that exists on disk is read locally: a file is the whole split; a folder saved with `save_to_disk`
    gives its split `spec.split`; a folder of data files gives the split `spec.split` as `datasets` infers splits
    from its file names (train.jsonl, test.jsonl, ...: see `_load_folder`). Anything else is a hub id loaded with
    `load_dataset(source, config, split=split)`. Row i of the result is row i of the source (`row_place`).
    Raises DataError naming the source on any failure, and the file and line for JSON that does not parse."""
    import datasets

    src = spec.source
    if not src:
        raise DataError(f"adapter {spec.adapter!r}: no source given")
    path = local_path(spec)
    try:
        if path is not None and path.is_dir() and ((path / "dataset_info.json").is_file()
                                                   or (path / "state.json").is_file()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = _pick_split(ds, spec.split, src)
        elif path is not None and path.is_dir():
            ds = _load_folder(datasets, path, spec)
        elif path is not None:
            builder = LOCAL_BUILDERS.get(path.suffix)
            if builder is None:
                raise DataError(f"{src}: cannot tell the file format; use one of {sorted(LOCAL_BUILDERS)}")
            ds = datasets.load_dataset(builder, data_files=[str(path)], split="train")
        elif Path(src).is_absolute() or src.startswith((".", "~")) or Path(src).suffix in LOCAL_BUILDERS:
            raise DataError(f"{src}: no such file or folder")
        else:
            ds = datasets.load_dataset(src, spec.config or None, split=spec.split)
    except DataError:
        raise
    except Exception as e:  # the hub client's errors differ by version; name the dataset whatever they are
        problem = json_problem(path, src) if path is not None else None
        if problem:  # `datasets` says only that generation failed: name the line that does not parse
            raise DataError(problem) from None
        raise DataError(f"dataset {src!r} (config {spec.config or None!r}, split {spec.split!r}) could not be "
                        f"loaded: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if spec.limit:
        ds = ds.select(range(min(spec.limit, len(ds))))
    return ds


def _load_folder(datasets, path: Path, spec):
    """The split `spec.split` of a folder of data files, as `datasets` infers splits from the file and subfolder
    names (train, validation/valid/dev/val, test/testing/eval/evaluation; a hub snapshot's dataset card may declare
    them and configurations too); a folder whose names say no split is the one split `train`."""
    if not any(f.suffix in LOCAL_BUILDERS for f in path.rglob("*") if f.is_file()):
        raise DataError(f"{spec.source}: no data files ({', '.join(LOCAL_BUILDERS)}) in this folder")
    try:
        return datasets.load_dataset(str(path), spec.config or None, split=spec.split)
    except ValueError as e:
        if "Unknown split" not in str(e):
            raise
        raise DataError(f"{spec.source}: the folder {path} has no split {spec.split!r} ({e}). Splits are read from "
                        "the file or subfolder names (train, validation/valid/dev/val, test/testing/eval/evaluation, "
                        "e.g. test.jsonl); a folder whose names say no split is the one split 'train'") from None


def _pick_split(dd, split: str, src: str):
    if split not in dd:
        raise DataError(f"{src}: no split {split!r}; splits: {sorted(dd)}")
    return dd[split]


def require_columns(ds, columns: list[str], spec) -> None:
    """Raise DataError naming the source, adapter and the missing column(s) when `ds` lacks any of `columns`."""
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{spec.source}: missing column(s) {missing} for adapter {spec.adapter!r}; "
                        f"columns present: {ds.column_names}")


# ------------------------------------------------------------------------------------------------ places


def _is_json_lines(path: Path) -> bool:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.endswith(".jsonl")


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _line_numbers(path: Path, indices: set[int]) -> dict[int, int]:
    """{row index: 1-based line} in a JSON-lines file; `datasets` skips blank lines, so row i is the (i+1)-th line
    that is not blank."""
    out, row = {}, -1
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                row += 1
                if row in indices:
                    out[row] = lineno
                    if len(out) == len(indices):
                        break
    return out


def row_places(spec, indices: list[int], source: bool = True) -> list[str]:
    """Where rows `indices` (0-based, as `load_rows(spec)` numbers them) sit, for messages: "<file>, row n (line l)"
    for a JSON-lines file, "<file>, row n" for another file, "<source> (split 's'), row n" for a folder or hub
    dataset (its rows are those of the split, in `datasets`' file order). `source` False leaves out the source."""
    path = local_path(spec)
    lines = {}
    if path is None or path.is_dir():
        config = f", config {spec.config!r}" if spec.config else ""
        where = f"{spec.source} (split {spec.split!r}{config})"
    else:
        where = spec.source
        if _is_json_lines(path):
            try:
                lines = _line_numbers(path, set(indices))
            except (OSError, UnicodeDecodeError):  # the place is for a message: a row number still tells it
                lines = {}
    rows = [f"row {i + 1}" + (f" (line {lines[i]})" if i in lines else "") for i in indices]
    return [f"{where}, {r}" for r in rows] if source else rows


def row_place(spec, index: int) -> str:
    """`row_places` for one row."""
    return row_places(spec, [index])[0]


def raw_columns(spec, keys: list[str]) -> dict[str, list] | None:
    """{key: its value on every row} of a local JSON-lines or JSON file, as the file holds them, rows numbered as
    `load_rows(spec)` numbers them; None for other sources. `datasets` reads a key whose values differ in kind as one
    JSON column and gives a string that parses as JSON ("true", "3") as the value it spells, so a field checked for
    its type is read from here where its column is such a JSON column."""
    path = local_path(spec)
    if path is None or path.is_dir() or LOCAL_BUILDERS.get(path.suffix) != "json":
        return None
    with _open_text(path) as fh:
        text = fh.read()
    objs = None
    if not _is_json_lines(path):
        try:
            objs = json.loads(text)
        except json.JSONDecodeError:
            objs = None
        if not isinstance(objs, list):
            objs = None
    if objs is None:
        try:
            objs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:  # a layout `datasets` reads another way: its values stand
            return None
    if spec.limit:
        objs = objs[:spec.limit]
    return {k: [o.get(k) if isinstance(o, dict) else None for o in objs] for k in keys}


def _kind(v) -> str | None:
    """A JSON value's kind as `datasets` types a column (null: any kind; integers and fractions are both numbers)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string", list: "list", dict: "object"}[type(v)]


def json_problem(path: Path, source: str) -> str | None:
    """Why the JSON file `path` (or a JSON file in the folder `path`) cannot be read, as "<file>, line n: ...": the
    first text that is not valid JSON, a line of JSON lines that is not an object, or a key whose kind differs
    from an earlier line's (`datasets` refuses some mixes, e.g. with blank lines between). None when there is none
    of these (or `path` holds no JSON)."""
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and LOCAL_BUILDERS.get(f.suffix) == "json")
        named = [(f, f"{source.rstrip('/')}/{f.relative_to(path)}") for f in files]
    else:
        named = [(path, source)] if LOCAL_BUILDERS.get(path.suffix) == "json" else []
    for f, name in named:
        try:
            with _open_text(f) as fh:
                text = fh.read()
        except UnicodeDecodeError as e:
            return f"{name}: not UTF-8 text (byte {e.start})"
        except OSError as e:
            return f"{name}: cannot be read ({e})"
        if not _is_json_lines(f):  # a .json file: one JSON document, or JSON lines
            try:
                json.loads(text)
                continue
            except json.JSONDecodeError as e:
                if text.lstrip().startswith("["):
                    return f"{name}, line {e.lineno}: not valid JSON ({e.msg}, column {e.colno})"
        first: dict[str, tuple[str, int]] = {}  # key -> (kind, line) where it was first seen with a value
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                return f"{name}, line {lineno}: not valid JSON ({e.msg}, column {e.colno})"
            if not isinstance(obj, dict):
                return f"{name}, line {lineno}: expected a JSON object, got {type(obj).__name__}"
            for key, v in obj.items():
                kind = _kind(v)
                seen = first.setdefault(key, (kind, lineno)) if kind else None
                if seen and seen[0] != kind:
                    return (f"{name}, line {lineno}: key {key!r} is a {kind} ({v!r:.60}) where line {seen[1]} has a "
                            f"{seen[0]}; give each key one kind of value on every line")
    return None
