"""Per-step readers scored as ProcessBench scores a process reward model: each reader gives every step of a solution a
score (higher: more likely right), a threshold chosen on validation solutions turns the scores into a predicted
first wrong step (`process.first_below`, `process.choose_threshold`), and the test solutions are scored by
`evaluation.processbench_scores` (accuracy on solutions with a wrong step, on solutions without one, their harmonic
mean F1), per reward-model seed, then mean and std over seeds.

Every reader is read at the same place: the token that carries a step's label in a PRM (`prm.step_positions`: the
last character of the separator after the step, the EOS for the last step), i.e. the state once the step is
written. The readers: each process reward model's probability; each outcome reward model's Q-value towards the
goal prototype and its reward head there; and the policy's own confidence, the mean log-probability of the step's
tokens (separator included) under the policy that wrote it (`confidence.policy_logprobs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import evaluation
from ..confidence import policy_logprobs
from ..data import GenerationRecord
from ..io import to_jsonable
from ..prm import load_prm, prm_token_values, step_positions
from ..process import choose_threshold, first_below, toy_first_error_step
from ..qvalues import TokenValues
from . import figures
from .analysis import HEAD, Analysis
from .curves import partial_auroc
from .localisation import error_localisation

POLICY = "policy"
"""the reader name of the policy's confidence"""


def step_columns(tokenizer, records: list[GenerationRecord], separator: str) -> list[np.ndarray]:
    """Per record, the `TokenValues` column of each step's reading token (`prm.step_positions`): (S_i,) ints, the
    last one the EOS column."""
    out = []
    for r in records:
        enc, pos = step_positions(tokenizer, r.prompt, r.response.split(separator), separator)
        out.append(np.asarray(pos) - enc.response_start + 1)  # column 0 is the last prompt token
    return out


def step_labels(records: list[GenerationRecord], separator: str) -> np.ndarray:
    """(N,) ProcessBench's label of each record: meta "label" (a stepwise data set's) when present, else the toy
    verifier's (`process.toy_first_error_step` of meta "first_error_char"), -1 with no wrong step. Raises
    ValueError naming a record that has neither."""
    out = []
    for i, r in enumerate(records):
        if "label" in r.meta:
            out.append(int(r.meta["label"]))
        elif "first_error_char" in r.meta:
            out.append(toy_first_error_step(r.response, r.meta["first_error_char"], r.is_correct))
        else:
            raise ValueError(f"record {i}: meta has neither 'label' nor 'first_error_char'; its first wrong step "
                             "is unknown")
        if out[-1] >= len(r.response.split(separator)):
            raise ValueError(f"record {i}: first wrong step {out[-1]} is outside its "
                             f"{len(r.response.split(separator))} steps")
    return np.asarray(out, dtype=int)


def read_process_models(dirs: dict[str, list[Path]], records: list[GenerationRecord], device: torch.device,
                        batch_size: int = 64) -> dict[str, list[TokenValues]]:
    """{PRM name: one `TokenValues` per seed}, P(right) at every state in `head` (`prm.prm_token_values`), each
    model loaded with plain `transformers` and run on `device`, one at a time."""
    out: dict[str, list[TokenValues]] = {}
    for name, ds in dirs.items():
        for d in ds:
            model, tok = load_prm(d)
            out.setdefault(name, []).append(prm_token_values(model.to(device), tok, [r.prompt for r in records],
                                                             [r.response for r in records], batch_size))
            del model
    return out


def at_steps(tv: TokenValues, scorer: str, columns: list[np.ndarray]) -> list[np.ndarray]:
    """Per record, the value of `scorer` at its step columns."""
    v = tv.values(scorer)
    return [v[i, c].astype(float) for i, c in enumerate(columns)]


def policy_step_confidence(policy_dir: Path, records: list[GenerationRecord], columns: list[np.ndarray],
                           device: torch.device, batch_size: int = 64) -> list[np.ndarray]:
    """Per record, each step's mean log-probability of its tokens under the policy: the tokens after the previous
    step's reading token up to and including this step's (response token j sits at column j + 1)."""
    policy = AutoModelForCausalLM.from_pretrained(policy_dir).to(device)
    tok = AutoTokenizer.from_pretrained(policy_dir)
    lps = policy_logprobs(policy, tok, [r.prompt for r in records], [r.response for r in records],
                          batch_size=batch_size)
    del policy
    out = []
    for lp, cols in zip(lps, columns):
        starts = np.concatenate([[0], cols[:-1]])
        out.append(np.array([lp.sampled[a:b].mean() for a, b in zip(starts, cols)], dtype=float))
    return out


def validation_split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) indices of n solutions: a seeded random `share` of them for validation."""
    order = np.random.default_rng([seed, 31]).permutation(n)
    k = int(round(share * n))
    return np.sort(order[:k]), np.sort(order[k:])


def score_reader(per_seed: list[list[np.ndarray]], labels: np.ndarray, val: np.ndarray, test: np.ndarray) -> dict:
    """One reader: per seed, the threshold of highest validation F1 and ProcessBench's scores on the test
    solutions with it; mean and sample std over seeds of the test accuracies and F1. A seed whose validation set
    lacks erroneous or correct solutions has no threshold: its scores are NaN, with the reason."""
    seeds = []
    for scores in per_seed:
        try:
            t, val_scores = choose_threshold([scores[i] for i in val], labels[val].tolist())
        except ValueError as e:
            nan = float("nan")
            seeds.append({"threshold": nan, "validation_f1": nan, "why": str(e), "acc_erroneous": nan,
                          "acc_correct": nan, "f1": nan, "n_erroneous": int((labels[test] >= 0).sum()),
                          "n_correct": int((labels[test] < 0).sum())})
            continue
        pred = [first_below(scores[i], t) for i in test]
        seeds.append({"threshold": t, "validation_f1": val_scores["f1"],
                      **evaluation.processbench_scores(pred, labels[test].tolist())})
    out = {"per_seed": seeds}
    for key in ("f1", "acc_erroneous", "acc_correct"):
        m, s, _ = evaluation.mean_std([x[key] for x in seeds])
        out[key] = {"mean": m, "std": s}
    return out


def processbench_readers(readers: dict[str, list[list[np.ndarray]]], kinds: dict[str, str], labels: np.ndarray,
                         share: float, seed: int, localisation: dict[str, dict] | None = None) -> Analysis:
    """ProcessBench's scores of every per-step reader. readers: {reader: per seed, per solution (S_i,) step
    scores}; kinds: {reader: "prm", "q", "head" or "policy"}; labels: (N,) first wrong step or -1; `share` of the
    solutions (seeded by `seed`) choose each threshold, the rest are scored. `localisation`: {reader: the curve-drop
    localisation score of `localisation.error_localisation` for that reader}, kept beside ProcessBench's."""
    val, test = validation_split(len(labels), share, seed)
    data: dict = {"n_validation": int(len(val)), "n_test": int(len(test)),
                  "n_test_erroneous": int((labels[test] >= 0).sum()), "n_test_correct": int((labels[test] < 0).sum()),
                  "validation_share": share, "readers": {}}
    for name, per_seed in readers.items():
        entry = {"kind": kinds[name], **score_reader(per_seed, labels, val, test)}
        loc = (localisation or {}).get(name)
        if loc is not None:
            entry["localisation"] = {k: loc[k] for k in ("hit_rate", "hit_rate_std", "chance", "control_hit_rate")}
        data["readers"][name] = entry
    data = to_jsonable(data)
    return Analysis("processbench", data, figures.processbench(data))


def reader_name(model: str, scorer: str) -> str:
    """How a reader is named: "<model> PRM", "<model> Q (<prototype>)", "<model> reward head", or "policy"."""
    return {HEAD: f"{model} reward head", "prm": f"{model} PRM"}.get(scorer, f"{model} Q ({scorer})")


def processbench_table(data: dict):
    """One row per reader (pandas DataFrame): kind, test F1 and the two accuracies (mean ± std over seeds), and
    the curve-drop localisation score with its chance level where it was measured."""
    import pandas as pd

    if data.get("skipped"):
        return pd.DataFrame({"skipped": [data["skipped"]]})
    rows = []
    for name, e in data["readers"].items():
        row = {"reader": name, "kind": e["kind"], "seeds": len(e["per_seed"])}
        for key, label in (("f1", "F1"), ("acc_erroneous", "acc. erroneous"), ("acc_correct", "acc. correct")):
            row[label] = f"{e[key]['mean']:.3f} ± {e[key]['std']:.3f}"
        loc = e.get("localisation")
        row["localisation (chance)"] = f"{loc['hit_rate']:.3f} ({loc['chance']:.3f})" if loc else ""
        rows.append(row)
    return pd.DataFrame(rows).set_index("reader")


@dataclass
class StepReaders:
    """Every per-step reader of notebook 02's solutions: `scores` {reader: per seed, per solution (S_i,)},
    `kinds` {reader: "prm", "q", "head" or "policy"}, `labels` (N,) first wrong step or -1, and the PRMs' per-token
    values `prm_values` {PRM name: [TokenValues per seed]} for the per-token analyses (partial AUROC,
    localisation)."""

    scores: dict[str, list[list[np.ndarray]]]
    kinds: dict[str, str]
    labels: np.ndarray | None
    prm_values: dict[str, list[TokenValues]] = field(default_factory=dict)
    why_not: str = ""
    """why the steps were not scored (labels None): the solutions' first wrong steps are unknown"""


def read_step_readers(inputs, values: dict[str, list[TokenValues]], q_prototype: str, device: torch.device,
                      batch_size: int = 64) -> StepReaders:
    """Read every reader at every step of `inputs.records` (a `RepresentationInputs`): the outcome reward models'
    Q-values towards `q_prototype` and reward heads from their per-token `values` (`read_reward_models`), the
    process reward models of `inputs.prm_dirs` (run here on `device`) and the policy's confidence."""
    records, sep = inputs.records, inputs.separator
    prm_values = read_process_models(inputs.prm_dirs, records, device, batch_size)
    try:
        labels = step_labels(records, sep)
    except ValueError as e:  # e.g. a real evaluation set labelled by its final answer alone
        return StepReaders({}, {}, None, prm_values, f"no first wrong step to score against: {e}")
    cols = step_columns(inputs.tokenizer, records, sep)
    scores: dict[str, list[list[np.ndarray]]] = {}
    kinds: dict[str, str] = {}
    for name, tvs in prm_values.items():
        scores[reader_name(name, "prm")], kinds[reader_name(name, "prm")] = \
            [at_steps(tv, HEAD, cols) for tv in tvs], "prm"
    for name, tvs in values.items():
        for scorer, kind in ((q_prototype, "q"), (HEAD, "head")):
            scores[reader_name(name, scorer)] = [at_steps(tv, scorer, cols) for tv in tvs]
            kinds[reader_name(name, scorer)] = kind
    scores[POLICY] = [policy_step_confidence(inputs.policy_dir, records, cols, device, batch_size)]
    kinds[POLICY] = "policy"
    return StepReaders(scores, kinds, labels, prm_values)


def step_analyses(inputs, steps: StepReaders, analyses: dict[str, Analysis], fractions: list[float],
                  n_bootstrap: int, window: tuple[int, int], share: float, seed: int) -> dict[str, Analysis]:
    """The per-step analyses of notebook 02, given the outcome models' `analyses` so far (its
    `error_localisation`): with process reward models, their partial-sequence AUROC (`prm_partial_auroc`) and
    curve-drop localisation (`prm_localisation`) on their per-token P(right); then ProcessBench's scores of every
    reader (`processbench`), each beside its localisation score where there is one; when the solutions' first wrong
    steps are unknown, `processbench` holds only why ({"skipped": ..., "readers": {}}) and no figure."""
    out: dict[str, Analysis] = {}
    if steps.prm_values:
        out["prm_partial_auroc"] = partial_auroc(steps.prm_values, inputs.labels, fractions, [HEAD], n_bootstrap,
                                                 seed)
        out["prm_localisation"] = error_localisation(steps.prm_values, inputs.labels, inputs.error_columns, [HEAD],
                                                     window, seed)
    loc = {}
    outcome = analyses["error_localisation"].data["scores"] if "error_localisation" in analyses else {}
    for rm, by in outcome.items():
        for scorer, e in by.items():
            loc[reader_name(rm, scorer)] = e
    if "prm_localisation" in out:
        for rm, by in out["prm_localisation"].data["scores"].items():
            loc[reader_name(rm, "prm")] = by[HEAD]
    if steps.labels is None:
        out["processbench"] = Analysis("processbench", {"skipped": steps.why_not, "readers": {}})
    else:
        out["processbench"] = processbench_readers(steps.scores, steps.kinds, steps.labels, share, seed, loc)
    return out
