"""What notebook 02 reads: the notebook-01 run (found through `gcrm_kit.rm_runs`, the contract between the
notebooks), its reward models chosen by name or role, and labelled sampled solutions with the token of each one's
first wrong step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from ..data import GenerationRecord, PreferencePair, load_jsonl
from ..params import RepresentationParams, RMTrainingParams, step_separator_of
from ..qvalues import response_token_index
from ..rm_runs import eval_records_of_run, policy_dir_of, resolve_rm_run, select_reward_models
from ..runs import Run


@dataclass
class RepresentationInputs:
    """What the analyses read: the notebook-01 run, its reward models, and labelled sampled solutions.

    model_dirs: reward model name -> one checkpoint folder per seed of `rm_seeds`; records: the N analysed
    solutions; labels: (N,) bool, final answer correct; error_columns: (N,) the `TokenValues` column of the first
    wrong step's first token (state after reading it), -1 when the verifier found no wrong step; roles: reward
    model name -> its role (`gcrm_kit.rm_runs.ROLES`)."""

    rm_run_dir: Path
    rm_params: RMTrainingParams
    model_dirs: dict[str, list[Path]]
    rm_seeds: list[int]
    records: list[GenerationRecord]
    labels: np.ndarray
    error_columns: np.ndarray
    train_pairs: list[PreferencePair]
    tokenizer: object = None
    n_empty_skipped: int = 0
    roles: dict[str, str] = field(default_factory=dict)
    prm_dirs: dict[str, list[Path]] = field(default_factory=dict)
    """process reward models (role `process`): name -> one checkpoint folder per seed; read by the per-step
    analyses only (`steps.py`), never as outcome reward models"""
    separator: str = ";"
    """what separates the solutions' steps (the notebook-01 run's `params.step_separator_of`)"""
    policy_dir: Path | None = None
    """the policy the reward models started from (whose confidence is a per-step reader)"""


def first_error_columns(tokenizer, records: list[GenerationRecord], key: str = "first_error_char") -> np.ndarray:
    """(N,) the `TokenValues` column of each record's first wrong step: the record's `meta[key]` (a character
    offset in the response, as the toy verifier gives it) mapped through the tokenizer's offsets; -1 when absent."""
    out = np.full(len(records), -1, dtype=int)
    for i, r in enumerate(records):
        j = response_token_index(tokenizer, r.response, r.meta.get(key))
        if j is not None:
            out[i] = j + 1
    return out


def load_inputs(p: RepresentationParams, run: Run | None = None) -> RepresentationInputs:
    """Find the notebook-01 run (`p.rm_run`, or the newest made with `p.rm_params`, trained now if none), pick its
    reward models (`p.reward_models`: names or roles; empty: all) and seeds, and load `p.n_samples` of its
    evaluation samples of `p.split` (from the sample cache beside that run; sampled again only if the cache is
    gone). Writes inputs.json into `run`."""
    rm_dir = Path(resolve_rm_run(p.rm_run, p.rm_params, p.output_root)).resolve()
    sel = select_reward_models(rm_dir, p.reward_models, p.rm_seeds)
    p01, seeds = sel.params, sel.seeds
    model_dirs = {n: ds for n, ds in sel.dirs.items() if sel.roles[n] != "process"}
    prm_dirs = {n: ds for n, ds in sel.dirs.items() if sel.roles[n] == "process"}
    if not model_dirs:
        raise ValueError(f"reward_models {p.reward_models}: only process reward models chosen in {rm_dir}; the "
                         "analyses need at least one outcome reward model beside them")
    names = list(model_dirs)
    for ds in sel.dirs.values():
        for d in ds:
            if not (d / "config.json").is_file():
                raise FileNotFoundError(f"{d}: no reward-model checkpoint (config.json) there")
    first = model_dirs[names[0]][0]
    policy_dir = policy_dir_of(first)
    records = eval_records_of_run(rm_dir, p01, p.split, policy_dir)
    n_empty = sum(not r.response for r in records)
    records = [r for r in records if r.response]  # an empty response has no token to read a value at
    if not records:
        raise ValueError(f"no non-empty {p.split!r} evaluation samples in {rm_dir}")
    if p.n_samples and p.n_samples < len(records):
        keep = np.sort(np.random.default_rng([p.seed, 21]).choice(len(records), p.n_samples, replace=False))
        records = [records[i] for i in keep]
    tokenizer = AutoTokenizer.from_pretrained(first)
    labels = np.array([r.is_correct for r in records], dtype=bool)
    inputs = RepresentationInputs(rm_dir, p01, model_dirs, seeds, records, labels,
                                  first_error_columns(tokenizer, records),
                                  load_jsonl(rm_dir / "data" / "train_pairs.jsonl", PreferencePair), tokenizer,
                                  n_empty, {n: sel.roles[n] for n in names}, prm_dirs, step_separator_of(p01),
                                  policy_dir)
    if run is not None:
        run.write_json("inputs.json", inputs_summary(inputs, p))
    return inputs


def inputs_summary(inputs: RepresentationInputs, p: RepresentationParams) -> dict:
    """Where the inputs came from and how many there are (JSON-able)."""
    err = inputs.error_columns >= 0
    prms = {"process_reward_models": {k: [str(d) for d in v] for k, v in inputs.prm_dirs.items()}} \
        if inputs.prm_dirs else {}
    return {**prms, "rm_run": str(inputs.rm_run_dir), "split": p.split, "n_samples": len(inputs.records),
            "n_correct": int(inputs.labels.sum()), "share_correct": float(inputs.labels.mean()),
            "n_incorrect_with_first_error": int((~inputs.labels & err).sum()),
            "n_correct_with_a_wrong_step": int((inputs.labels & err).sum()),
            "rm_seeds": inputs.rm_seeds, "model_dirs": {k: [str(d) for d in v] for k, v in inputs.model_dirs.items()},
            "roles": dict(inputs.roles),
            "train_pairs": len(inputs.train_pairs), "empty_responses_skipped": inputs.n_empty_skipped}
