"""Reading every sample token by token with a reward model: per-token Q-values cos(h_t, g) with the model's own
`correct` prototype, the scalar head at every token, and the final reward (`score_sample_set`), for both reward
models of every rm seed, and the process reward model's per-step probabilities when the run has one (`score_all`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import Encoded, pad_batch
from ..device import resolve_device
from ..models import load_reward_model, reward_forward
from ..params import FilteringParams
from ..prm import load_prm
from ..qvalues import Prototype, q_values
from .methods import REWARD_MODELS
from .prm_pruning import PRM_SCORER, prm_sample_scores
from .samples import SampleSet, ends_with_eos
from .setup import RMSetup


@dataclass
class SampleScores:
    """One reward model's reading of a SampleSet. q, token_reward: (S, Lmax) per response token (the EOS included
    for finished samples), NaN past each sample's length; reward: (S,) the final reward at the last token (the
    EOS of a finished sample). A process reward model's reading holds its step signal (`prm_pruning`) in both q and
    token_reward, and the probability of the last step it read as reward."""

    q: np.ndarray
    token_reward: np.ndarray
    reward: np.ndarray

    def signal(self, name: str) -> np.ndarray:
        return self.q if name == "q" else self.token_reward


@torch.no_grad()
def score_sample_set(model, tokenizer, prototype: torch.Tensor, ss: SampleSet, batch_size: int = 256,
                     desc: str = "scoring") -> SampleScores:
    """Per-token Q-values and head outputs and the final reward of every sample, in one forward pass per batch,
    in the kit's format (BOS + prompt + response + EOS), without the EOS for a sample that did not finish
    (`ends_with_eos`): what online generation reads too."""
    model.eval()
    dev = next(model.parameters()).device
    S, L = len(ss.records), int(ss.length.max())
    q = np.full((S, L), np.nan, dtype=np.float32)
    tr = np.full((S, L), np.nan, dtype=np.float32)
    reward = np.zeros(S, dtype=np.float32)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for s in tqdm(range(0, S, batch_size), desc=desc, leave=False):
        recs = ss.records[s:s + batch_size]
        seqs = []
        for r in recs:  # data.encode's format; an empty response is just its EOS; no EOS an unfinished sample lacks
            pr = tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            rs = tokenizer(r.response, add_special_tokens=False)["input_ids"]
            eos = [tokenizer.eos_token_id] if ends_with_eos(r) else []
            seqs.append(Encoded(bos + pr + rs + eos, len(bos) + len(pr)))
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        qv = q_values(out.hidden, prototype).cpu().numpy()
        tv = out.token_rewards.float().cpu().numpy()
        reward[s:s + len(recs)] = out.rewards.float().cpu().numpy()
        for j, e in enumerate(seqs):
            n = e.response_len
            assert n == ss.length[s + j], "make_sample_set and scoring disagree on a sample's length"
            q[s + j, :n] = qv[j, e.response_start:e.response_start + n]
            tr[s + j, :n] = tv[j, e.response_start:e.response_start + n]
    return SampleScores(q, tr, reward)


def score_all(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet]
              ) -> dict[tuple[str, int], dict[str, SampleScores]]:
    """Scores of every sample by both reward models, for every rm seed: {(which, seed index): {set: scores}}; and
    by the process reward model, when the setup has one, under (`prm_pruning.PRM_SCORER`, seed index)."""
    out = {}
    for which in REWARD_MODELS:
        for k, d in enumerate(setup.model_dirs[which]):
            model, tokenizer = load_reward_model(d)
            model.to(resolve_device(p.device))
            proto = Prototype.load(d, "correct").vector
            out[(which, k)] = {s: score_sample_set(model, tokenizer, proto, ss, p.batch_size,
                                                   desc=f"scoring {s} with {d.name}") for s, ss in samples.items()}
    for k, d in enumerate(setup.prm_dirs):
        model, tokenizer = load_prm(d)
        model.to(resolve_device(p.device))
        read = {s: prm_sample_scores(model, tokenizer, ss, p.batch_size) for s, ss in samples.items()}
        out[(PRM_SCORER, k)] = {s: SampleScores(x, x, last) for s, (x, last) in read.items()}
    return out
