"""Real datasets through Hugging Face `datasets`, adapted into the kit's schema (`PreferencePair`, `GenerationRecord`).

A `params.DatasetSpec` names an adapter and a source: a hub dataset id, or a local file or folder (JSON lines,
optionally gzipped, JSON, Parquet, CSV, or a folder saved with `save_to_disk`), so the same params run offline from
files. Adapters and what they make:

- pairs: `openmathinstruct` (OpenMathInstruct-1: a correct and an incorrect solution of the same question, as the
  paper pairs them), `hh_rlhf` (Anthropic HH-RLHF: the dialogues' shared prefix becomes the prompt, so the
  contrastive positions fall in the responses only), `pairs` (columns prompt / chosen / rejected);
- generation records with correctness: `records` (prompt / response / is_correct), `gsm8k_model_solutions`
  (OpenAI's grade-school-math model samples: one record per solution), `openmathinstruct_records`;
- benchmark problems (question + reference answer; the backbone answers them greedily and `answers_match` labels
  the answers): `gsm8k`, `math`, `gsm_hard`, `svamp`, `asdiv`, `qa` (question / expected_answer, the format of
  the algebra222, MAWPS and other OOD sets in NeMo-Skills);
- `helpsteer`: responses with attribute ratings, for labelled sets (`helpsteer_sets`) that become prototypes.

A source that cannot be read, or lacks a column an adapter needs, is a `DataError` naming the source and column.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from .data import DataError, GenerationRecord, PreferencePair

LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet", ".csv": "csv"}


# ------------------------------------------------------------------------------------------------ loading


def load_rows(spec):
    """The rows of `spec` (a DatasetSpec) as a `datasets.Dataset`, first `spec.limit` rows when set.

    A source that exists on disk is read locally: a file is the whole split; a folder saved with `save_to_disk`
    gives its split `spec.split`; a folder of data files gives the split `spec.split` as `datasets` infers splits
    from its file names (train.jsonl, test.jsonl, ...: see `_load_folder`). Anything else is a hub id loaded with
    `load_dataset(source, config, split=split)`. Raises DataError naming the source on any failure."""
    import datasets

    src = spec.source
    if not src:
        raise DataError(f"adapter {spec.adapter!r}: no source given")
    path = Path(src).expanduser()
    if not path.is_absolute():
        from .io import project_root

        if (project_root() / path).exists():  # papermill runs notebooks from notebooks/: relative to the project
            path = project_root() / path
    try:
        if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "state.json").is_file()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = _pick_split(ds, spec.split, src)
        elif path.is_dir():
            ds = _load_folder(datasets, path, spec)
        elif path.exists():
            builder = LOCAL_BUILDERS.get(path.suffix)
            if builder is None:
                raise DataError(f"{src}: cannot tell the file format; use one of {sorted(LOCAL_BUILDERS)}")
            ds = datasets.load_dataset(builder, data_files=[str(path)], split="train")
        elif path.is_absolute() or src.startswith((".", "~")) or path.suffix in LOCAL_BUILDERS:
            raise DataError(f"{src}: no such file or folder")
        else:
            ds = datasets.load_dataset(src, spec.config or None, split=spec.split)
    except DataError:
        raise
    except Exception as e:  # the hub client's errors differ by version; name the dataset whatever they are
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


# ------------------------------------------------------------------------------------------------ answers


_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) in `text`, braces balanced; None if there is none."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: \\boxed{} (MATH, OpenMath models), `#### x` (GSM8K), `A: x` (the GSM8K model
    samples), "the answer is x", else the last number in the text. None when nothing is found."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pat in (r"####\s*(.+)", r"(?:^|\n)\s*A:\s*(.+)", r"answer is\s*:?\s*\$?(" + _NUM + ")"):
        m = re.findall(pat, text, flags=re.I)
        if m:
            return m[-1].strip()
    nums = re.findall(_NUM, text)
    return nums[-1] if nums else None


def normalize_answer(ans: str) -> str:
    """Strip what does not change a math answer: $, commas in numbers, \\text{...} units, spaces, trailing dot,
    \\left/\\right, \\dfrac -> \\frac."""
    s = str(ans).strip()
    s = re.sub(r"\\text\{[^}]*\}", "", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("$", "").replace("\\!", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = s.replace(" ", "").rstrip(".")
    return s


def _as_number(s: str) -> float | None:
    m = re.fullmatch(r"\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        return float(Fraction(int(m[1]), int(m[2])))
    try:
        return float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, reference: str | float | int | None) -> bool:
    """Whether a predicted answer equals the reference: numerically (relative tolerance 1e-6) when both parse as
    numbers or fractions, else as normalised strings."""
    if predicted is None or reference is None:
        return False
    p, r = normalize_answer(str(predicted)), normalize_answer(str(reference))
    pn, rn = _as_number(p), _as_number(r)
    if pn is not None and rn is not None:
        return abs(pn - rn) <= 1e-6 * max(1.0, abs(rn))
    return p == r


# ------------------------------------------------------------------------------------------------ adapters


class Adapted(list):
    """The records an adapter read (a plain list of them), with the adapter's counts in `stats`: for hh_rlhf
    {"skipped_rows": rows that could not be split}, for openmathinstruct `pair_records`' counts; {} otherwise.
    Slices and other lists made from it are plain lists without `stats`."""

    def __init__(self, items=(), stats: dict | None = None):
        super().__init__(items)
        self.stats = dict(stats or {})


def _flag(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def openmathinstruct_records(ds, spec) -> list[GenerationRecord]:
    """OpenMathInstruct-1 rows (question, generated_solution, is_correct[, predicted_answer, expected_answer,
    dataset]) -> records. A record's `answer` is the solution's own (`predicted_answer`), what a majority vote counts;
    the reference (`expected_answer`) goes to `meta["reference"]`."""
    require_columns(ds, ["question", "generated_solution", "is_correct"], spec)
    out = []
    for row in ds:
        out.append(GenerationRecord(prompt=row["question"], response=row["generated_solution"],
                                    is_correct=_flag(row["is_correct"]), answer=_str(row.get("predicted_answer")),
                                    meta={"source": spec.source, "dataset": row.get("dataset"),
                                          "reference": _str(row.get("expected_answer"))}))
    return out


def pair_records(records: list[GenerationRecord], seed: int = 0, max_pairs_per_question: int = 1
                 ) -> tuple[list[PreferencePair], dict]:
    """(correct, incorrect) pairs of solutions to the same prompt, as the paper pairs OpenMathInstruct-1: up to
    `max_pairs_per_question` per prompt, drawn without repeating a solution. Returns pairs and counts by outcome."""
    rng = np.random.default_rng([seed, 5])
    by_q: dict[str, list[GenerationRecord]] = {}
    for r in records:
        by_q.setdefault(r.prompt, []).append(r)
    stats = Counter(questions=len(by_q))
    pairs = []
    for prompt, rs in by_q.items():
        good = sorted({r.response for r in rs if r.is_correct})
        bad = sorted({r.response for r in rs if not r.is_correct})
        if not good or not bad:
            stats["all_correct" if good else "all_incorrect"] += 1
            continue
        k = min(max_pairs_per_question, len(good), len(bad))
        for g, b in zip(rng.permutation(len(good))[:k], rng.permutation(len(bad))[:k]):
            pairs.append(PreferencePair(prompt, good[g], bad[b], meta={"messages": [{"role": "user",
                                                                                     "content": prompt}]}))
        stats["paired"] += 1
    return pairs, dict(stats)


def openmathinstruct_pairs(ds, spec) -> Adapted:
    pairs, stats = pair_records(openmathinstruct_records(ds, spec))
    return Adapted(pairs, stats)


HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def split_dialogue(text: str) -> list[dict]:
    """An HH-RLHF dialogue "\\n\\nHuman: ...\\n\\nAssistant: ..." -> chat messages [{"role", "content"}, ...]."""
    parts = re.split(r"\n\n(Human|Assistant):", text)
    msgs = []
    for role, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return msgs


def split_shared_prefix(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Split two HH-RLHF dialogues into (prompt, chosen response, rejected response): the prompt is their shared
    prefix up to and including the last "\\n\\nAssistant:" inside it, so each response is the final assistant turn
    where the two differ. None when the dialogues share no assistant turn start or end up identical."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    if n == len(chosen) == len(rejected):
        return None
    cut = chosen.rfind(ASSISTANT, 0, n)  # the last assistant turn that starts inside the shared prefix
    if cut < 0:
        return None
    cut += len(ASSISTANT)
    c, r = chosen[cut:], rejected[cut:]
    if not c.strip() or not r.strip() or c == r:
        return None
    return chosen[:cut], c, r


def hh_rlhf_pairs(ds, spec) -> Adapted:
    """Anthropic HH-RLHF rows (chosen, rejected dialogues) -> pairs whose prompt is the shared dialogue prefix.
    Rows that cannot be split (no shared assistant turn, identical responses) are left out and counted in the
    returned list's `stats["skipped_rows"]` (not in any pair, so the count never travels with one into a split)."""
    require_columns(ds, ["chosen", "rejected"], spec)
    out, skipped = [], 0
    for row in ds:
        split = split_shared_prefix(row["chosen"], row["rejected"])
        if split is None:
            skipped += 1
            continue
        prompt, c, r = split
        out.append(PreferencePair(prompt, c, r, meta={"messages": split_dialogue(prompt[:-len(ASSISTANT)])}))
    if not out:
        raise DataError(f"{spec.source}: no HH-RLHF row could be split into prompt and responses")
    return Adapted(out, {"skipped_rows": skipped})


def generic_pairs(ds, spec) -> list[PreferencePair]:
    require_columns(ds, ["prompt", "chosen", "rejected"], spec)
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in ds]


def generic_records(ds, spec) -> list[GenerationRecord]:
    require_columns(ds, ["prompt", "response", "is_correct"], spec)
    return [GenerationRecord(r["prompt"], r["response"], _flag(r["is_correct"]), _str(r.get("answer")),
                             dict(r.get("meta") or {})) for r in ds]


GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def gsm8k_model_solutions(ds, spec) -> list[GenerationRecord]:
    """OpenAI grade-school-math model samples: a row per question with `ground_truth` and one {is_correct,
    solution} column per model -> one record per solution, the model in meta."""
    require_columns(ds, ["question", "ground_truth"], spec)
    solvers = [c for c in ds.column_names if c in GSM8K_SOLVERS]
    if not solvers:
        raise DataError(f"{spec.source}: missing column(s) {list(GSM8K_SOLVERS)} (model solutions) for adapter "
                        f"{spec.adapter!r}; columns present: {ds.column_names}")
    out = []
    for qid, row in enumerate(ds):
        ref = extract_answer(row["ground_truth"])
        for s in solvers:
            sol = row[s]
            if not sol or not sol.get("solution"):
                continue
            out.append(GenerationRecord(row["question"], sol["solution"], _flag(sol["is_correct"]), ref,
                                        {"question_id": qid, "model": s}))
    return out


def _problems(ds, spec, question: Callable[[dict], str], answer: Callable[[dict], str], solution=None,
              columns=()) -> list[GenerationRecord]:
    require_columns(ds, list(columns), spec)
    out = []
    for qid, row in enumerate(ds):
        out.append(GenerationRecord(prompt=question(row), response=solution(row) if solution else "",
                                    is_correct=True, answer=_str(answer(row)),
                                    meta={"question_id": qid, "kind": "problem", "source": spec.source}))
    return out


def gsm8k_problems(ds, spec):
    """GSM8K (question, answer ending in "#### x") -> problems with the reference solution and answer."""
    return _problems(ds, spec, lambda r: r["question"], lambda r: extract_answer(r["answer"]),
                     lambda r: r["answer"], columns=("question", "answer"))


def math_problems(ds, spec):
    """MATH (problem, solution with \\boxed{answer}) -> problems."""
    return _problems(ds, spec, lambda r: r["problem"], lambda r: extract_boxed(r["solution"]),
                     lambda r: r["solution"], columns=("problem", "solution"))


def gsm_hard_problems(ds, spec):
    return _problems(ds, spec, lambda r: r["input"], lambda r: r["target"], columns=("input", "target"))


def svamp_problems(ds, spec):
    return _problems(ds, spec, lambda r: f"{r['Body'].strip()} {r['Question'].strip()}", lambda r: r["Answer"],
                     columns=("Body", "Question", "Answer"))


def asdiv_problems(ds, spec):
    # answers read like "9 (apples)": the number is what counts
    return _problems(ds, spec, lambda r: f"{r['body'].strip()} {r['question'].strip()}",
                     lambda r: str(r["answer"]).split(" (")[0], columns=("body", "question", "answer"))


def qa_problems(ds, spec):
    return _problems(ds, spec, lambda r: r["question"], lambda r: r["expected_answer"],
                     columns=("question", "expected_answer"))


HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def helpsteer_records(ds, spec) -> list[GenerationRecord]:
    """HelpSteer rows (prompt, response, five 0-4 ratings) -> records with the ratings in meta (is_correct: the
    response's correctness rating is at least 3)."""
    require_columns(ds, ["prompt", "response", *HELPSTEER_ATTRIBUTES], spec)
    return [GenerationRecord(r["prompt"], r["response"], int(r["correctness"]) >= 3, None,
                             {a: int(r[a]) for a in HELPSTEER_ATTRIBUTES}) for r in ds]


def helpsteer_sets(records: list[GenerationRecord], attribute: str, high: int = 4, low: int = 1
                   ) -> dict[str, list[GenerationRecord]]:
    """Labelled sets for a goal prototype: responses rated >= `high` on `attribute` and those rated <= `low`."""
    if attribute not in HELPSTEER_ATTRIBUTES:
        raise ValueError(f"unknown HelpSteer attribute {attribute!r}; known: {list(HELPSTEER_ATTRIBUTES)}")
    return {"high": [r for r in records if r.meta[attribute] >= high],
            "low": [r for r in records if r.meta[attribute] <= low]}


def _str(v) -> str | None:
    return None if v is None else str(v)


@dataclass(frozen=True)
class Adapter:
    kind: str  # "pairs" | "records" | "problems"
    read: Callable


ADAPTERS: dict[str, Adapter] = {
    "openmathinstruct": Adapter("pairs", openmathinstruct_pairs),
    "hh_rlhf": Adapter("pairs", hh_rlhf_pairs),
    "pairs": Adapter("pairs", generic_pairs),
    "records": Adapter("records", generic_records),
    "openmathinstruct_records": Adapter("records", openmathinstruct_records),
    "gsm8k_model_solutions": Adapter("records", gsm8k_model_solutions),
    "helpsteer": Adapter("records", helpsteer_records),
    "gsm8k": Adapter("problems", gsm8k_problems),
    "math": Adapter("problems", math_problems),
    "gsm_hard": Adapter("problems", gsm_hard_problems),
    "svamp": Adapter("problems", svamp_problems),
    "asdiv": Adapter("problems", asdiv_problems),
    "qa": Adapter("problems", qa_problems),
}


def load_adapted(spec, kind: str | None = None) -> Adapted:
    """Read `spec` through its adapter. `kind` ("pairs", "records", "problems"), when given, must be the adapter's.
    Returns a list (an `Adapted`) whose `stats` holds the adapter's counts, e.g. `skipped_rows` for hh_rlhf."""
    if spec.adapter not in ADAPTERS:
        raise DataError(f"unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}")
    a = ADAPTERS[spec.adapter]
    if kind is not None and a.kind != kind and not (kind == "records" and a.kind == "problems"):
        raise DataError(f"adapter {spec.adapter!r} gives {a.kind}, but {kind} are needed here")
    out = a.read(load_rows(spec), spec)
    if not out:
        raise DataError(f"{spec.source}: adapter {spec.adapter!r} found no records")
    return out if isinstance(out, Adapted) else Adapted(out)


# ------------------------------------------------------------------------------------------------ chat templates


def render_prompt(tokenizer, prompt: str, messages: list[dict] | None, mode: str = "auto") -> str:
    """The prompt text in the tokenizer's chat format when it has a template (and `mode` is auto), else `prompt`.
    The rendered text ends with the assistant turn's opening; a leading BOS text is dropped because the kit's
    `encode` adds the BOS token itself."""
    if mode == "never" or not getattr(tokenizer, "chat_template", None):
        return prompt
    text = tokenizer.apply_chat_template(messages or [{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token):]
    return text


def apply_chat_template(items: list, tokenizer, mode: str = "auto") -> list:
    """Pairs or records with their prompts rendered by `render_prompt` (responses lose the leading space the raw
    HH-RLHF format puts after "Assistant:"). Returns new objects (an `Adapted` list keeps its `stats`); the raw
    prompt stays in meta["raw_prompt"]."""
    if mode == "never" or not getattr(tokenizer, "chat_template", None):
        return items
    out = Adapted([], items.stats) if isinstance(items, Adapted) else []
    for it in items:
        prompt = render_prompt(tokenizer, it.prompt, it.meta.get("messages"), mode)
        meta = {**it.meta, "raw_prompt": it.prompt}
        if isinstance(it, PreferencePair):
            out.append(PreferencePair(prompt, it.chosen.lstrip(), it.rejected.lstrip(), meta))
        else:
            out.append(GenerationRecord(prompt, it.response.lstrip(), it.is_correct, it.answer, meta))
    return out


# ------------------------------------------------------------------------------------------------ benchmarks


def answer_problems(problems: list[GenerationRecord], model_dir: str, tokenizer, max_new_tokens: int = 512,
                    batch_size: int = 16, chat_template: str = "auto") -> list[GenerationRecord]:
    """Answer benchmark problems greedily with the causal LM in `model_dir` (the paper scores the base model's greedy
    generations) and label each answer against the reference with `answers_match`."""
    import torch
    from transformers import AutoModelForCausalLM

    from .generation import sample_responses

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    if torch.cuda.is_available():
        model.to("cuda")
    prompts = [render_prompt(tokenizer, q.prompt, None, chat_template) for q in problems]
    outs = sample_responses(model, tokenizer, prompts, n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, desc="answering")
    return [GenerationRecord(prompt, o[0], answers_match(extract_answer(o[0]), q.answer), extract_answer(o[0]),
                             {**q.meta, "reference": q.answer})
            for q, prompt, o in zip(problems, prompts, outs)]
