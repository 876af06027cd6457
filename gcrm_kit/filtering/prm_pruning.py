"""The process reward model (PRM) of the notebook-01 run as a pruning method (`prm`): the PRM's probability that a
step is right, read at each step's end, as a per-token signal that the shared pruning rule thresholds.

The signal of a sample is an (L,) row that holds, at the response token that ends each step (the token holding the
last character of the step's separator, or the EOS after the last step: where the PRM was trained to answer), the
PRM's probability of that step, and NaN everywhere else. The pruning rule (`pruning.prune_positions`, the same
threshold grid and validation choice as the Q-values) then prunes a sample at the end of its first step whose
probability falls below the threshold, and the tokens after that step's end count as saved. The step of an
unfinished sample that its generation cut (no separator or EOS after it) is never read. Steps that end within the
first `skip_tokens` response tokens never prune, as for every other signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..prm import prm_step_scores, separator_of, step_positions
from ..rm_runs import find_reward_model, role_of
from .samples import SampleSet, ends_with_eos

PRM_METHOD = "prm"
"""the pruning method's name"""
PRM_SCORER = "process"
"""the key of the PRM's scores in `scoring.score_all`'s output ((PRM_SCORER, seed index)) and of its parameter
count in `FrontierInputs.scorer_params`"""
STEP_SIGNAL = "step"
"""the name of the PRM's signal"""


def find_prm(rm_params, wanted: str, run_dir: Path) -> tuple[str | None, str]:
    """(name, "") of the process reward model `wanted` (a name or the role `process`) of the notebook-01 run with
    params `rm_params`, or (None, why it is left out): `wanted` empty, no such model, or one that is not a PRM."""
    if not wanted:
        return None, "prm is empty: no process reward model asked for"
    try:
        name = find_reward_model(rm_params, wanted, run_dir)
    except ValueError as e:
        return None, str(e)
    spec = next(s for s in rm_params.reward_models if s.name == name)
    if role_of(spec) != "process":
        return None, f"reward model {name!r} of {run_dir} is not a process reward model (role {role_of(spec)!r})"
    return name, ""


def step_signal(response_start: int, positions: list[int], probs: np.ndarray, length: int) -> np.ndarray:
    """(length,) signal of one sample: `probs[k]` at the response index of step k's end (`positions`: indices in
    the PRM's input ids, whose response starts at `response_start`), NaN elsewhere; ends at or past `length` (a
    step whose end the sample never generated) are dropped."""
    row = np.full(length, np.nan, dtype=np.float32)
    for pos, pr in zip(positions, probs):
        t = pos - response_start
        if 0 <= t < length:
            row[t] = pr
    return row


def prm_sample_scores(model, tokenizer, ss: SampleSet, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The PRM's reading of a SampleSet: ((S, Lmax) step signal, NaN off step ends and past each sample's end;
    (S,) the probability of its last step read (NaN when none was)). The probabilities are `prm.prm_step_scores`
    of (prompt, response) in the kit's format; where they sit comes from `prm.step_positions` on the same text. An
    empty response (just its EOS) has no step to read and is never pruned."""
    sep = separator_of(model)
    S, L = len(ss.records), int(ss.length.max()) if len(ss.records) else 0
    read = [i for i, r in enumerate(ss.records) if r.response]
    got = prm_step_scores(model, tokenizer, [ss.records[i].prompt for i in read],
                          [ss.records[i].response for i in read], batch_size=batch_size, separator=sep)
    out = np.full((S, L), np.nan, dtype=np.float32)
    last = np.full(S, np.nan, dtype=np.float32)
    for i, pr in zip(read, got):
        r = ss.records[i]
        enc, pos = step_positions(tokenizer, r.prompt, r.response.split(sep), sep)
        if not ends_with_eos(r):  # no EOS: the last step was cut, and the PRM's reading of it would sit on an EOS
            pos, pr = pos[:-1], pr[:-1]
        out[i, :ss.length[i]] = step_signal(enc.response_start, pos, pr, int(ss.length[i]))
        seen = out[i][~np.isnan(out[i])]
        if len(seen):
            last[i] = seen[-1]
    return out, last
