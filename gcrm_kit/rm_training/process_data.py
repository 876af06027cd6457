"""What notebook 01's process reward models train on: the solutions of the training pairs (both sides, pair by pair,
so the first N pairs' solutions are the first 2N examples), labelled step by step by the verifier or by Monte-Carlo
rollouts of the policy (`process.labels`), or a TRL stepwise file (`process.data_file`). The examples are saved
in the run folder as TRL stepwise JSON lines (data/process_train.jsonl; soft labels as shares), with what the
labelling cost (process_labels.json), and read back from there when the run resumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import real_data
from ..data import DataError, GenerationRecord
from ..io import atomic_write_text
from ..params import DatasetSpec, RMTrainingParams, step_separator_of
from ..prm import StepwiseExample, check_example
from ..prm_labels import LabellingCost, monte_carlo_step_labels, verifier_step_labels
from ..runs import Run
from ..toyworld.corpus import MARK_CHARS
from ..toyworld.sampling import cached_samples
from .accelerator import release_accelerator_memory
from .world import RMData

EXAMPLES_FILE = "process_train.jsonl"
COST_FILE = "process_labels.json"


@dataclass
class ProcessData:
    """Stepwise examples for the process reward models: `examples` in order, `pair_index` the training pair each
    came from (-1: from a file), `separator` what joins their steps, `cost` the labelling's `LabellingCost.as_dict`
    plus the examples left out by reason ("skipped")."""

    examples: list[StepwiseExample]
    pair_index: list[int]
    separator: str
    cost: dict = field(default_factory=dict)

    def for_pairs(self, n_pairs: int | None) -> list[StepwiseExample]:
        """The examples of the first `n_pairs` training pairs (all for None; a file's first 2 * n_pairs)."""
        if n_pairs is None:
            return self.examples
        if all(i < 0 for i in self.pair_index):
            return self.examples[:2 * n_pairs]
        return [e for e, i in zip(self.examples, self.pair_index) if i < n_pairs]


def read_stepwise_file(path: str, separator: str) -> list[StepwiseExample]:
    """A TRL stepwise file through the `trl_stepwise` adapter (its checks: steps a non-empty list of non-empty
    strings, one true/false label per step), then each row checked for what training on separators needs (no step
    holding the separator). Raises DataError naming the file, row (line) and key; nothing is trained then."""
    spec = DatasetSpec(adapter="trl_stepwise", source=path)
    recs = real_data.load_adapted(spec, "records")
    out = []
    for i, r in enumerate(recs):
        ex = StepwiseExample(r.prompt, list(r.meta["steps"]), list(r.meta["step_labels"]))
        try:
            check_example(ex, separator, real_data.row_place(spec, i))
        except ValueError as e:
            raise DataError(str(e)) from None
        out.append(ex)
    return out


def _pair_records(p: RMTrainingParams, run: Run, world: RMData) -> dict[tuple[str, str], GenerationRecord]:
    """The toy world's labelled samples the pairs were built from, by (prompt, response)."""
    recs = cached_samples(p, run.cache_root, world.policy_dir, "id", "pairs")
    return {(r.prompt, r.response): r for r in recs}


def _toy_solutions(p: RMTrainingParams, run: Run, world: RMData, separator: str
                   ) -> tuple[list[GenerationRecord], list[int], dict]:
    """Each training pair's chosen then rejected solution as its labelled sample; a solution with an empty step (a
    sample cut after a separator) cannot be labelled on separators and is left out and counted."""
    by_text = _pair_records(p, run, world)
    recs, index, skipped = [], [], {}
    for i, pair in enumerate(world.train_pairs):
        for response in (pair.chosen, pair.rejected):
            r = by_text.get((pair.prompt, response))
            if r is None:
                raise RuntimeError(f"training pair {i}: its solution {response!r:.60} is not among the sampled "
                                   "solutions the pairs were built from")
            if not all(s.strip() for s in response.split(separator)):
                skipped["solution with an empty step"] = skipped.get("solution with an empty step", 0) + 1
                continue
            recs.append(r)
            index.append(i)
    return recs, index, skipped


def build_process_data(p: RMTrainingParams, run: Run, world: RMData) -> ProcessData:
    """The stepwise examples of `p.process` (see the module docstring), saved in the run folder, or read back from
    it when an earlier run of the same folder saved them."""
    sep = step_separator_of(p)
    f, cost_f = run.path("data", EXAMPLES_FILE), run.path(COST_FILE)
    if f.is_file() and cost_f.is_file():
        saved = json.loads(cost_f.read_text())
        return ProcessData(read_examples_file(f), saved.pop("pair_index"), sep, saved)
    pr = p.process
    if pr.data_file:
        examples = read_stepwise_file(pr.data_file, sep)
        index, skipped = [-1] * len(examples), {}
        cost = LabellingCost("file", len(examples), sum(len(e.steps) for e in examples)).as_dict()
        cost["file"] = pr.data_file
    else:
        recs, index, skipped = _toy_solutions(p, run, world, sep)
        if pr.labels == "verifier":
            examples, c = verifier_step_labels(recs)
        else:
            policy = AutoModelForCausalLM.from_pretrained(world.policy_dir)
            tok = AutoTokenizer.from_pretrained(world.policy_dir)
            examples, c = monte_carlo_step_labels(
                policy, tok, [(r.prompt, r.response.split(sep)) for r in recs], pr.n_rollouts, pr.soft,
                separator=sep, temperature=pr.rollout_temperature, max_new_tokens=p.pairs.max_new_tokens,
                batch_size=p.pairs.batch_size, seed=p.seed * 1000 + 5, suppress_tokens=list(MARK_CHARS))
            del policy
            release_accelerator_memory()
        cost = c.as_dict()
    if not examples:
        raise RuntimeError(f"no stepwise examples for the process reward models (left out: {skipped})")
    cost["skipped"] = skipped
    examples_file(f, examples)
    run.write_json(COST_FILE, {**cost, "pair_index": index})
    return ProcessData(examples, index, sep, cost)


def examples_file(path: Path, examples: list[StepwiseExample]) -> Path:
    """`examples` as TRL stepwise JSON lines at `path` (what a launched training reads back). Returns the path."""
    return atomic_write_text(path, "".join(json.dumps({"prompt": e.prompt, "completions": e.steps,
                                                        "labels": e.labels}, ensure_ascii=False) + "\n"
                                           for e in examples))


def read_examples_file(path: Path) -> list[StepwiseExample]:
    """The examples `examples_file` wrote."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [StepwiseExample(r["prompt"], r["completions"], r["labels"]) for r in rows]
