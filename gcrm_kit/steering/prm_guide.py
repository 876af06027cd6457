"""The process reward model (PRM) of the RM run as the guide of the step-level beam search (method `guided_prm`):
each candidate step is read in context (prompt + the beam's earlier steps + the candidate) by the PRM, and its
probability that the step is right, read at the candidate's last token (the step's end: where the PRM was trained to
answer), takes the goal term's place in the step score s = c^r p^(1-r).

`PRMStepScorer` has the interface the beam search takes from `context.ContextScorer` and `ExactPrefixScorer`
(`start`, `extend`, `select`); like the exact process value it hands the beam a (C, 1) "state" whose goal term
(`prm_goal`) is its one column. It keeps no key/value cache: every candidate re-runs prompt + prefix + step, and the
beam counts those tokens as the PRM's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Encoded, pad_batch
from ..prm import RIGHT, load_prm, separator_of
from ..rm_runs import find_reward_model, role_of, select_reward_models
from .context import RMState

METHOD = "guided_prm"
"""the method's name in the comparison's rows"""


class PRMStepScorer:
    """Candidate steps read in context by a PRM: `extend` returns ((C, 1) probabilities that each candidate step is
    right, (C,) the same, the new state). Same interface as `context.ContextScorer`, without a cache
    (`use_cache` False: the beam counts prompt + prefix + step as the tokens each candidate costs). `tokens`
    counts the tokens run through the PRM."""

    use_cache = False
    counts_tokens = True

    def __init__(self, model, pad_id: int):
        self.model = model.eval()
        self.pad_id = pad_id
        self.tokens = 0

    def start(self, prefixes: list[list[int]]) -> RMState:
        """The prompts' ids (BOS + prompt), one row each."""
        return RMState([list(p) for p in prefixes])

    @torch.no_grad()
    def extend(self, state: RMState, rows: list[int], steps: list[list[int]]):
        """Candidate `steps[c]` after live row `rows[c]`: the PRM's P(right) at each candidate's last token."""
        new_ids = [state.ids[r] + list(st) for r, st in zip(rows, steps)]
        b = pad_batch([Encoded(ids, 0) for ids in new_ids], self.pad_id, "right")
        dev = next(self.model.parameters()).device
        out = self.model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                         position_ids=b["position_ids"].to(dev), use_cache=False)
        last = torch.tensor([len(x) - 1 for x in new_ids], device=dev)
        prob = torch.softmax(out.logits.float(), -1)[torch.arange(len(new_ids), device=dev), last, RIGHT].cpu()
        self.tokens += sum(len(x) for x in new_ids)
        return prob[:, None], prob, RMState(new_ids)

    def select(self, state: RMState, keep: list[int]) -> RMState:
        return RMState([state.ids[k] for k in keep])


def prm_goal(hidden: torch.Tensor) -> torch.Tensor:
    """The goal term of `PRMStepScorer`'s states: (C, 1) -> (C,), the probability itself."""
    return hidden[:, 0]


@dataclass
class PRMGuide:
    """The PRM that guides `guided_prm`: its name in the RM run and its folder per rm seed."""

    name: str
    dirs: dict[int, Path]

    def scorer(self, seed: int, device, vocab: dict) -> PRMStepScorer:
        """The scorer of rm seed `seed` on `device`. Raises ValueError when the PRM's tokenizer is not the policy's
        (`vocab`): the decoder passes token ids from one to the other."""
        model, tok = load_prm(self.dirs[seed])
        if tok.get_vocab() != vocab:
            raise ValueError(f"process reward model {self.name} seed {seed} does not share the policy's tokenizer; "
                             "the decoder passes token ids from one to the other")
        return PRMStepScorer(model.to(device), tok.pad_token_id)


def find_guide(p, setup) -> tuple[PRMGuide | None, str]:
    """(the PRM `p.prm` of the setup's RM run for its seeds, "") or (None, why `guided_prm` is left out): `p.prm`
    empty, no such model, a model that is not a PRM, or a PRM whose step separator is not what ends a step in the
    beam search (`beam.step_end`: it would read candidates where it was never trained to answer)."""
    if not p.prm:
        return None, "prm is empty: no process reward model asked for"
    if setup.rm_params is None:  # reward models given without a notebook-01 run (no roles to read)
        return None, "the reward models come without notebook 01's params, so no process reward model can be found"
    try:
        name = find_reward_model(setup.rm_params, p.prm, setup.rm_run_dir)
    except ValueError as e:
        return None, str(e)
    spec = next(s for s in setup.rm_params.reward_models if s.name == name)
    if role_of(spec) != "process":
        return None, (f"reward model {name!r} of {setup.rm_run_dir} is not a process reward model "
                      f"(role {role_of(spec)!r})")
    sel = select_reward_models(setup.rm_run_dir, [name], setup.seeds)
    dirs = dict(zip(sel.seeds, sel.dirs[name]))
    model, _ = load_prm(dirs[sel.seeds[0]])
    sep = separator_of(model)
    if not sep.endswith(p.beam.step_end):
        return None, (f"process reward model {name!r} reads a step at the end of its separator {sep!r}, but the "
                      f"beam search ends steps at {p.beam.step_end!r}")
    return PRMGuide(name, dirs), ""
