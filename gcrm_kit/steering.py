"""Goal-guided decoding: step-level beam search steered by a reward model's goal states (PAPER.md section 4).

The decoder follows self-evaluation guided beam search (Xie et al., NeurIPS 2023) as the paper uses it. At every
step, for each live beam:

1. the policy samples `n_candidates` continuations, each stopped at the end of one step (the step delimiter, or
   the EOS that ends the solution), with its length-normalised probability p = exp(mean log-prob of its tokens);
   while a question has fewer than beam_size / n_candidates live beams (at the first step: one), each samples
   2 * beam_size / (live beams) instead, as the released decoder does, so the search starts from enough choices;
2. the reward model reads prompt + prefix + candidate **in context** and the candidate's goal term is the
   weighted cosine between its final state at the candidate's last token (or the mean over the candidate's
   tokens) and one or more goal prototypes,
   G = sum_k w_k cos(h, g_k) / sum_k |w_k|, in [-1, 1] (a negative weight steers away from a prototype);
3. the step score combines both as Xie et al. combine confidence and probability,
   s = c^r * p^(1 - r) with c = (1 + G) / 2 and r = 2^rho / (2^rho + 1) from the confidence ratio rho
   (rho = 0: equal weight; rho -> -inf: policy only; rho -> +inf: goal only);
4. a beam's score is the geometric mean of its step scores (or, reading G as the value of the whole prefix,
   c_latest^r times the geometric mean of its p^(1-r)); among the finished beams kept so far and every new
   candidate of a question, `beam_size` survive: the best ones (beam temperature 0), or a draw without
   replacement with probabilities proportional to score^(1/temperature).

A question is done when every surviving beam has finished; its answer is the best finished beam.

The paper's released decoder scores each candidate step on its own, without the prompt or the earlier steps.
Here the reward model always sees the whole context, and keeps its key/value cache across steps: each beam
carries the cache of its prefix, so only the new step's tokens are run through the reward model (`ContextScorer`;
a test checks that the cached scores equal re-scoring the full sequence).

Comparisons on the same prompts (`compare_methods`): plain sampling (the SFT baseline), best-of-N by the final
reward at matched policy compute (and reranked by each goal term), beam search on the policy's probability alone
(what the search gives without a goal), goal-guided decoding towards each target, and, in the toy world, the
same search guided by an exact process value (what a goal term that is always right mid-solution reaches), each
with the compute it used: policy tokens sampled, policy tokens processed (the sampled ones plus the prompt/prefix
tokens every `generate` call encodes: the step-level decoder re-encodes each beam's prefix, once per candidate, at
every step), tokens run through the reward model, and wall-clock seconds. Best-of-N's N is matched on policy tokens
*sampled* only; the processed count is reported beside it, not matched.
Attributes are scored by a judge: the toy world's exact scorers by default, or any function registered with
`register_judge` (an LLM judge, for instance); none needs a paid service unless one is registered. Each distinct
(prompt, response) is judged once per run (`CachedJudge`, held by the `SteeringSetup`): the labelled examples
prototypes are built from are judged once, not once per reward model and seed. Only the attributes the judge
scores are reported; correctness is reported beside each goal's aim when the judge scores `correct`.

Real data (a real-data notebook-01 run, `SteeringParams.data`; the paper's setting is Llama-3-8B-Instruct with its
HH-RLHF reward models): the evaluation prompts come from a data set (HelpSteer's), rendered with the policy's chat
template when the reward models were trained on it; the prototypes are the mean states of responses *rated* high
or low on an attribute (HelpSteer's ratings through `real_data.helpsteer_records`: the ratings are the labels, no
judge is asked); a step is the first line of a sample (`step_end` a newline, `step_end_match: contains`, since a
BPE vocabulary merges newlines into other tokens); the prototype diagnostics read held-out rated responses; nothing
toy-specific runs (no suppressed marks, no exact process value). No judge here can rate helpfulness: the default
`rm_proxy` judge (`RewardModelProxyJudge`) reports PROXIES read off one reward model, its final reward and, per
rated attribute, whether the response's EOS state is nearer the high-rated prototype than the low-rated one. A
real judge (the paper's GPT-4, people) is plugged in with `register_judge`; its factory may take the
`SteeringSetup` (params, prompts, reward models) as its one argument.
"""

from __future__ import annotations

import inspect
import math
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from .data import encode, pad_batch, pad_ids
from .models import backbone_of, reward_forward


# ------------------------------------------------------------------------------------------------ goal term


@dataclass
class GoalTerm:
    """Several goal prototypes with weights: G(h) = sum_k w_k cos(h, g_k) / sum_k |w_k|, in [-1, 1].

    `vectors` (K, D), `weights` (K,), `names` the K prototype names."""

    name: str
    names: list[str]
    vectors: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def from_prototypes(cls, name: str, prototypes: dict, weights: dict[str, float]) -> "GoalTerm":
        """`prototypes`: prototype name -> `qvalues.Prototype`; `weights`: prototype name -> weight (non-zero)."""
        missing = [k for k in weights if k not in prototypes]
        if missing:
            raise KeyError(f"goal {name!r}: no prototype {missing}; available: {sorted(prototypes)}")
        if not weights or all(w == 0 for w in weights.values()):
            raise ValueError(f"goal {name!r}: needs at least one non-zero weight, got {weights}")
        names = list(weights)
        vecs = torch.stack([prototypes[k].vector.float() for k in names])
        return cls(name, names, vecs, torch.tensor([float(weights[k]) for k in names]))

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., D) -> goal term (...)."""
        h = F.normalize(hidden.float(), dim=-1)
        g = F.normalize(self.vectors.to(hidden.device), dim=-1)
        w = self.weights.to(hidden.device)
        return (h @ g.T) @ w / w.abs().sum()


def goal_ratio(confidence_ratio: float) -> float:
    """Xie et al.'s weight r of the confidence in s = c^r p^(1-r): r = 2^rho / (2^rho + 1); rho = 0 gives 0.5."""
    x = confidence_ratio * math.log(2.0)  # r = sigmoid(rho ln 2), written so that no power of 2 overflows
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def step_log_score(mean_logprob: torch.Tensor, goal: torch.Tensor, r: float, eps: float = 1e-6) -> torch.Tensor:
    """log s = r log c + (1 - r) log p with c = (1 + G) / 2: mean_logprob (C,) = log p, goal (C,) = G."""
    c = ((1.0 + goal) / 2.0).clamp(min=eps)
    return r * torch.log(c) + (1.0 - r) * mean_logprob if r > 0 else mean_logprob.clone()


# ------------------------------------------------------------------------------------------------ policy steps


@dataclass
class Step:
    """One sampled step: its token ids (ending with the delimiter or the EOS when complete), the sum of their
    log-probabilities under the policy, and whether the step ended the solution (EOS) or was cut off at
    `max_step_tokens` (complete = False)."""

    ids: list[int]
    logprob: float
    ends_solution: bool
    complete: bool

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, len(self.ids))


def step_stop_ids(tokenizer, step_end: str, match: str = "token") -> list[int]:
    """Token ids that end a step: the EOS first, then the delimiters.

    `match="token"`: the delimiter `step_end`, which must be one token (the toy world's ';'). `match="contains"`:
    every token whose text contains `step_end` (for a newline in a BPE vocabulary: '\\n', '\\n\\n', '.\\n', ...;
    a sample's first line then ends at whichever comes first). Special tokens never count as delimiters."""
    if match == "token":
        ids = tokenizer(step_end, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"step_end {step_end!r} is {len(ids)} tokens for this tokenizer; the decoder stops a "
                             "step at one token (choose a delimiter that is a single token, e.g. a newline, or "
                             "beam.step_end_match: contains)")
        return [tokenizer.eos_token_id, ids[0]]
    if match != "contains":
        raise ValueError(f"unknown step_end_match {match!r}; expected 'token' or 'contains'")
    if not step_end:
        raise ValueError("step_end must not be empty")
    try:
        known = _CONTAINING.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: nothing is kept
        known = {}
    key = (step_end, len(tokenizer), tokenizer.eos_token_id)
    if key not in known:  # decoding a 128k vocabulary takes a second or two: once per tokenizer
        special = set(tokenizer.all_special_ids)
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        ids = [i for i, t in enumerate(texts) if step_end in t and i not in special]
        if not ids:
            raise ValueError(f"no token of this tokenizer contains step_end {step_end!r}")
        known[key] = [tokenizer.eos_token_id] + ids
    return list(known[key])


_CONTAINING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
"""tokenizer -> {(step_end, vocabulary size, EOS id): stop ids} for `step_stop_ids(..., match="contains")`"""


def step_end_ids(tokenizer, step_end: str, match: str = "token") -> list[int]:
    """The delimiter ids of `step_stop_ids` (without the EOS): where a step ends inside a response."""
    eos = tokenizer.eos_token_id
    return [i for i in step_stop_ids(tokenizer, step_end, match)[1:] if i != eos]


@torch.no_grad()
def sample_steps(policy, tokenizer, prefixes: list[list[int]], n: int | list[int], temperature: float,
                 max_step_tokens: int, step_end: str = ";", suppress_ids: list[int] | None = None,
                 stop_ids: list[int] | None = None) -> list[Step]:
    """Sample `n` next steps for each prefix (token ids, BOS + prompt + steps so far) with HF `generate`; `n` may
    be a list (one count per prefix). `stop_ids` (EOS first, then the delimiters; default
    `step_stop_ids(tokenizer, step_end)`) end a step.

    Generation of a row stops at the step delimiter or the EOS (both passed as end tokens, so finished rows are
    padded while the others go on). Returns the steps of prefix 0, then those of prefix 1, and so on. The
    log-probabilities are those of the policy itself (raw logits, temperature 1), not of the sampling
    distribution: the length-normalised probability in the step score is the model's."""
    policy.eval()
    stops = list(stop_ids) if stop_ids is not None else step_stop_ids(tokenizer, step_end)
    stop_set = set(stops)
    counts = [n] * len(prefixes) if isinstance(n, int) else list(n)
    prefixes = [p for p, k in zip(prefixes, counts) for _ in range(k)]
    ids, att = pad_ids(prefixes, tokenizer.pad_token_id, side="left")
    kw = dict(max_new_tokens=max_step_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=stops,
              suppress_tokens=suppress_ids or None, output_logits=True,
              return_dict_in_generate=True)
    if temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
    else:
        kw.update(do_sample=False)
    dev = policy.device
    out = policy.generate(input_ids=ids.to(dev), attention_mask=att.to(dev), **kw)
    gen = out.sequences[:, ids.shape[1]:].cpu()
    logp = torch.stack([F.log_softmax(lg.float(), -1) for lg in out.logits], 1).cpu()  # (B*n, S, V)
    tok_logp = logp.gather(-1, gen[:, :logp.shape[1]].unsqueeze(-1)).squeeze(-1)
    steps = []
    for row, lp in zip(gen.tolist(), tok_logp):
        cut = next((k for k, t in enumerate(row) if t in stop_set), None)
        n_tok = len(row) if cut is None else cut + 1
        toks = row[:n_tok]
        steps.append(Step(toks, float(lp[:n_tok].sum()), cut is not None and toks[-1] == tokenizer.eos_token_id,
                          cut is not None))
    return steps


# ---------------------------------------------------------------------------------------- reward model in context


@dataclass
class RMState:
    """The reward model's view of B live prefixes.

    With a cache: `cache` holds keys/values of every prefix token (B rows, L slots, some of them padding),
    `mask` (B, L) marks the real slots, `next_pos` (B,) is the position id of each row's next token. Without a
    cache, `ids` holds each row's full token ids and every score re-runs them."""

    ids: list[list[int]]
    cache: DynamicCache | None = None
    mask: torch.Tensor | None = None
    next_pos: torch.Tensor | None = None


class ContextScorer:
    """Runs candidate steps through the reward model in context and returns their final states.

    `use_cache=True` keeps the reward model's key/value cache of every beam's prefix and runs only the new step's
    tokens; `use_cache=False` re-runs prompt + prefix + step each time (the reference the cache is tested
    against). A candidate's state is the final-layer state at its last token (`pooling="last"`) or the mean over
    its own tokens (`"mean"`, as the paper's released decoder pools a candidate), in context either way.
    `tokens` counts the tokens run through the reward model."""

    def __init__(self, model, use_cache: bool = True, pooling: str = "last"):
        if pooling not in ("last", "mean"):
            raise ValueError(f"unknown step pooling {pooling!r}; expected 'last' or 'mean'")
        self.model = model.eval()
        self.body, self.head = backbone_of(model)
        self.use_cache = use_cache
        self.pooling = pooling
        self.tokens = 0

    @property
    def device(self):
        return next(self.model.parameters()).device

    @torch.no_grad()
    def start(self, prefixes: list[list[int]]) -> RMState:
        """Encode the prompts (BOS + prompt ids), one row each."""
        if not self.use_cache:
            return RMState([list(p) for p in prefixes])
        ids, mask = pad_ids(prefixes, self._pad_id)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        out = self.body(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                        use_cache=True)
        self.tokens += int(mask.sum())
        return RMState([list(p) for p in prefixes], out.past_key_values, mask.to(dev), mask.sum(-1).to(dev))

    @property
    def _pad_id(self) -> int:
        pad = self.model.config.pad_token_id
        return 0 if pad is None else int(pad)

    @torch.no_grad()
    def extend(self, state: RMState, rows: list[int], steps: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                         RMState]:
        """Append step `steps[c]` to prefix `rows[c]` for every candidate c.

        Returns the candidates' pooled final-layer states (after the norm) (C, D), the reward head at each
        candidate's last token (C,), and the state of the C extended prefixes (to be narrowed with `select`)."""
        new_ids = [state.ids[r] + list(s) for r, s in zip(rows, steps)]
        dev = self.device
        if not self.use_cache:
            from .data import Encoded

            b = pad_batch([Encoded(x, len(x)) for x in new_ids], self._pad_id)
            out = reward_forward(self.model, b["input_ids"].to(dev), b["attention_mask"].to(dev),
                                 b["position_ids"].to(dev))
            self.tokens += int(b["attention_mask"].sum())
            lens = b["attention_mask"].sum(-1).to(dev)
            step_lens = torch.tensor([len(s) for s in steps], device=dev)
            pos = torch.arange(b["input_ids"].shape[1], device=dev)[None]
            in_step = (pos >= (lens - step_lens)[:, None]) & (pos < lens[:, None])
            return self._pool(out.hidden, in_step, lens - 1), out.rewards, RMState(new_ids)
        rix = torch.tensor(rows, device=dev)
        ids, smask = pad_ids(steps, self._pad_id)
        S = ids.shape[1]
        ids, smask = ids.to(dev), smask.to(dev)
        cache = _select_cache(state.cache, rix, self.model.config)
        mask = torch.cat([state.mask[rix], smask], dim=1)
        pos = state.next_pos[rix, None] + torch.arange(S, device=dev)[None]
        out = self.body(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        self.tokens += int(smask.sum())
        hidden = out.last_hidden_state
        lens = smask.sum(-1)
        rewards = self.head(hidden[torch.arange(len(steps), device=dev), lens - 1]).squeeze(-1)
        pooled = self._pool(hidden, smask.bool(), lens - 1)
        return pooled, rewards, RMState(new_ids, out.past_key_values, mask, state.next_pos[rix] + lens)

    def _pool(self, hidden: torch.Tensor, in_step: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """hidden (C, S, D), in_step (C, S) bool, last (C,) -> (C, D)."""
        if self.pooling == "last":
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        m = in_step.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def select(self, state: RMState, keep: list[int]) -> RMState:
        """The rows `keep` of `state` (surviving beams), dropping cache slots no row uses any more."""
        ids = [state.ids[k] for k in keep]
        if not self.use_cache or not keep:
            return RMState(ids)
        kix = torch.tensor(keep, device=state.mask.device)
        mask = state.mask[kix]
        used = mask.any(0)
        cache = _select_cache(state.cache, kix, self.model.config, None if bool(used.all()) else used)
        return RMState(ids, cache, mask[:, used], state.next_pos[kix])


class ExactPrefixScorer:
    """Toy world only: a perfect process value in place of the reward model, to see what the decoder does with a
    goal term that is always right mid-solution (the ceiling of step-level guidance on correctness).

    Same interface as `ContextScorer`; a candidate's "state" is (C, 1): +1 when every step written so far is
    right (and, once the solution has ended, the answer), -1 otherwise. Use it with `goal=exact_goal`."""

    use_cache = True
    counts_tokens = False

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens = 0

    def start(self, prefixes: list[list[int]]) -> RMState:
        return RMState([list(p) for p in prefixes])

    def extend(self, state: RMState, rows: list[int], steps: list[list[int]]):
        from .toyworld import parse_prompt
        from .toyworld.attributes import prefix_error_free
        from .toyworld.problems import PROMPT_END

        new_ids = [state.ids[r] + list(st) for r, st in zip(rows, steps)]
        vals = []
        for ids in new_ids:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt, _, partial = text.partition(PROMPT_END)
            ok = prefix_error_free(parse_prompt(prompt + PROMPT_END), partial, ids[-1] == self.tokenizer.eos_token_id)
            vals.append(1.0 if ok else -1.0)
        h = torch.tensor(vals)[:, None]
        return h, h[:, 0], RMState(new_ids)

    def select(self, state: RMState, keep: list[int]) -> RMState:
        return RMState([state.ids[k] for k in keep])


def exact_goal(hidden: torch.Tensor) -> torch.Tensor:
    """The goal term of `ExactPrefixScorer`'s states: (C, 1) -> (C,)."""
    return hidden[:, 0]


def _select_cache(cache: DynamicCache, rows: torch.Tensor, config, slots: torch.Tensor | None = None) -> DynamicCache:
    """A new DynamicCache holding rows `rows` (and, if given, only the slots `slots`) of `cache`'s keys/values."""
    data = []
    for layer in cache.layers:
        k, v = layer.keys[rows], layer.values[rows]
        if slots is not None:
            k, v = k[:, :, slots], v[:, :, slots]
        data.append((k, v))
    return DynamicCache(ddp_cache_data=data, config=config)


# ------------------------------------------------------------------------------------------------ beam search


@dataclass
class BeamSettings:
    """Settings of the step-level beam search (see the module docstring)."""

    n_candidates: int = 2
    beam_size: int = 5
    max_step_tokens: int = 8
    max_steps: int = 10
    temperature: float = 1.0
    confidence_ratio: float = 0.0
    beam_temperature: float = 0.0
    beam_temperature_decay: float = 1.0
    step_end: str = ";"
    goal_aggregation: str = "step"
    step_end_match: str = "token"


@dataclass
class Beam:
    """One partial solution: its steps (token ids), the per-step log-probability (mean per token) and goal term,
    and whether it has finished. `r` is the goal's weight; `aggregation` how step scores make the beam's score:

    - `step`: Xie et al.'s aggregation with the goal in the confidence's place: every step scores
      s_t = c_t^r p_t^(1-r) and the beam scores their geometric mean;
    - `latest`: the goal term is a Q-value, the value of the whole prefix, so only the latest one counts:
      c_T^r * (geometric mean of p_t)^(1-r)."""

    prompt_index: int
    steps: list[list[int]] = field(default_factory=list)
    mean_logprobs: list[float] = field(default_factory=list)
    goals: list[float] = field(default_factory=list)
    finished: bool = False
    truncated: bool = False
    r: float = 0.0
    aggregation: str = "step"

    @property
    def log_step_scores(self) -> list[float]:
        """log s_t = r log c_t + (1 - r) log p_t for every step."""
        return step_log_score(torch.tensor(self.mean_logprobs), torch.tensor(self.goals), self.r).tolist() \
            if self.steps else []

    @property
    def score(self) -> float:
        """The beam's log score (see the class docstring)."""
        if not self.steps:
            return 0.0
        if self.aggregation == "step":
            return float(np.mean(self.log_step_scores))
        last = float(step_log_score(torch.tensor([0.0]), torch.tensor([self.goals[-1]]), self.r)[0])
        return last + (1.0 - self.r) * float(np.mean(self.mean_logprobs))

    @property
    def token_ids(self) -> list[int]:
        return [t for s in self.steps for t in s]

    def extended(self, step: Step, goal: float, force_finish: bool) -> "Beam":
        return Beam(self.prompt_index, self.steps + [step.ids], self.mean_logprobs + [step.mean_logprob],
                    self.goals + [goal], finished=step.ends_solution or force_finish,
                    truncated=force_finish and not step.ends_solution, r=self.r, aggregation=self.aggregation)


@dataclass
class Decoded:
    """The decoder's answer for one prompt and what it cost: policy tokens sampled, reward-model tokens, and policy
    tokens processed (`policy_tokens_processed`: the sampled tokens plus the prefix tokens every step's `generate`
    call encoded, BOS + prompt + steps so far, once per candidate sampled from that prefix; padding not counted)."""

    prompt: str
    response: str
    score: float
    n_steps: int
    truncated: bool
    policy_tokens: int
    rm_tokens: int
    final_goal: float = float("nan")
    policy_tokens_processed: int = 0


def select_beams(pool: list[Beam], k: int, temperature: float, rng: np.random.Generator) -> list[Beam]:
    """Keep `k` beams of `pool`: the best by score when `temperature` is (about) 0, else a draw without
    replacement with probabilities proportional to exp(score / temperature) = s^(1/temperature)."""
    if len(pool) <= k:
        return sorted(pool, key=lambda b: -b.score)
    scores = np.array([b.score for b in pool])
    if temperature < 5e-3:
        order = np.argsort(-scores, kind="stable")[:k]
    else:
        z = scores / temperature
        p = np.exp(z - z.max())
        order = rng.choice(len(pool), size=k, replace=False, p=p / p.sum())
    return [pool[i] for i in order]


@torch.no_grad()
def guided_decode(policy, tokenizer, prompts: list[str], settings: BeamSettings, scorer: ContextScorer | None = None,
                  goal: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
                  suppress_tokens: list[str] | None = None, trace_prompts: tuple[int, ...] = (),
                  trace: list | None = None, max_length: int | None = None) -> list[Decoded]:
    """Step-level beam search over all `prompts` at once (live beams of every prompt share each forward pass).

    With `scorer` and `goal`, each candidate is scored in context by the reward model (`scorer` gives its pooled
    states, `goal` maps them to goal terms, e.g. a `GoalTerm`) and the goal term weighs in by the confidence
    ratio; without them (or with confidence ratio -inf) the search uses the policy's probability alone. `trace`
    (a list), when given, receives one dict per step and per prompt in `trace_prompts` with every candidate's
    text, log-probability, goal term and score, and which survived.
    `max_length` caps prefix + step (default: the policy's max_position_embeddings). Returns one `Decoded` per
    prompt, in order."""
    s = settings
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    r = goal_ratio(s.confidence_ratio) if (scorer is not None and goal is not None) else 0.0
    use_rm = scorer is not None and goal is not None and r > 0
    bad = [tokenizer.convert_tokens_to_ids(t) for t in (suppress_tokens or [])]
    max_length = max_length or getattr(policy.config, "max_position_embeddings", 10 ** 9)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt_ids = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    policy_tokens = [0] * len(prompts)
    policy_tokens_processed = [0] * len(prompts)  # prefix tokens each generate call encodes + sampled tokens
    rm_tokens = [0] * len(prompts)
    if s.goal_aggregation not in ("step", "latest"):
        raise ValueError(f"unknown goal_aggregation {s.goal_aggregation!r}; expected 'step' or 'latest'")
    stops = step_stop_ids(tokenizer, s.step_end, s.step_end_match)
    live = [Beam(i, r=r, aggregation=s.goal_aggregation) for i in range(len(prompts))]
    done: dict[int, list[Beam]] = {i: [] for i in range(len(prompts))}
    state = None
    if use_rm:
        state = scorer.start(prompt_ids)
        if scorer.use_cache and getattr(scorer, "counts_tokens", True):  # prompts run once; later only new steps
            for i, p in enumerate(prompt_ids):
                rm_tokens[i] += len(p)
    for t in range(s.max_steps):
        if not live:
            break
        prefixes = [prompt_ids[b.prompt_index] + b.token_ids for b in live]
        # as the released decoder: while a question has few live beams, each samples more candidates, so that
        # the first steps (one beam) still offer 2 * beam_size choices
        n_live = {i: sum(b.prompt_index == i for b in live) for i in {b.prompt_index for b in live}}
        counts = [s.n_candidates if n_live[b.prompt_index] * s.n_candidates > s.beam_size
                  else max(s.n_candidates, 2 * s.beam_size // n_live[b.prompt_index]) for b in live]
        steps = sample_steps(policy, tokenizer, prefixes, counts, s.temperature, s.max_step_tokens, s.step_end, bad,
                             stop_ids=stops)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        # one candidate per distinct (prefix, step): duplicates would fill the beam with copies
        seen, cands = set(), []
        for j, beam in enumerate(live):
            policy_tokens_processed[beam.prompt_index] += counts[j] * len(prefixes[j])  # one row per candidate
            for k in range(counts[j]):
                st = steps[offsets[j] + k]
                policy_tokens[beam.prompt_index] += len(st.ids)
                policy_tokens_processed[beam.prompt_index] += len(st.ids)
                key = (beam.prompt_index, tuple(beam.token_ids), tuple(st.ids))
                if st.ids and key not in seen:
                    seen.add(key)
                    cands.append((j, st))
        if not cands:
            break
        if use_rm:
            hidden, _, cand_state = scorer.extend(state, [j for j, _ in cands], [st.ids for _, st in cands])
            g = goal(hidden).cpu()
            for (j, st) in cands:
                if not getattr(scorer, "counts_tokens", True):
                    break
                rm_tokens[live[j].prompt_index] += len(st.ids) if scorer.use_cache \
                    else len(prompt_ids[live[j].prompt_index]) + len(live[j].token_ids) + len(st.ids)
        else:
            g, cand_state = torch.zeros(len(cands)), None
        last_round = t == s.max_steps - 1
        new = []
        for c, (j, st) in enumerate(cands):
            beam = live[j]
            too_long = len(prefixes[j]) + len(st.ids) + s.max_step_tokens > max_length
            new.append(beam.extended(st, float(g[c]), last_round or too_long))
        by_prompt: dict[int, list[int]] = {}
        for c, b in enumerate(new):
            by_prompt.setdefault(b.prompt_index, []).append(c)
        keep_rows, next_live = [], []
        temp = s.beam_temperature * (s.beam_temperature_decay ** t)
        for i, idx in by_prompt.items():
            pool = done[i] + [new[c] for c in idx]
            kept = select_beams(pool, s.beam_size, temp, rng)
            done[i] = [b for b in kept if b.finished]
            for b in kept:
                if not b.finished:
                    c = next(c for c in idx if new[c] is b)
                    keep_rows.append(c)
                    next_live.append(b)
            if trace is not None and i in trace_prompts:
                kept_ids = {id(b) for b in kept}
                trace.append({"prompt_index": i, "step": t, "candidates": [
                    {"prefix": tokenizer.decode(live[cands[c][0]].token_ids, skip_special_tokens=True),
                     "step": tokenizer.decode(new[c].steps[-1], skip_special_tokens=False),
                     "mean_logprob": new[c].mean_logprobs[-1], "goal": new[c].goals[-1],
                     "step_score": float(math.exp(new[c].log_step_scores[-1])),
                     "beam_score": float(math.exp(new[c].score)), "kept": id(new[c]) in kept_ids,
                     "finished": new[c].finished} for c in idx],
                    "carried": [{"text": tokenizer.decode(b.token_ids, skip_special_tokens=True),
                                 "beam_score": float(math.exp(b.score)), "kept": id(b) in kept_ids}
                                for b in pool if b.finished and all(b is not new[c] for c in idx)]})
        if use_rm and keep_rows:
            state = scorer.select(cand_state, keep_rows)
        live = next_live
    out = []
    for i, prompt in enumerate(prompts):
        pool = done[i] + [b for b in live if b.prompt_index == i]
        best = max(pool, key=lambda b: b.score) if pool else Beam(i, truncated=True)
        text = tokenizer.decode(best.token_ids, skip_special_tokens=True)
        out.append(Decoded(prompt, text, best.score, len(best.steps), best.truncated or not best.finished,
                           policy_tokens[i], rm_tokens[i], best.goals[-1] if best.goals else float("nan"),
                           policy_tokens_processed[i]))
    return out


def format_trace(trace: list[dict], prompt: str | None = None, width: int = 34) -> str:
    """A readable account of the beam as it evolved, one block per step (for the notebook's worked example): the
    last `width` characters of prefix + candidate, newlines shown as ⏎."""
    def flat(text: str) -> str:
        return text.replace("\n", "⏎")

    lines = [f"question: {prompt}"] if prompt else []
    for entry in trace:
        lines.append(f"\nstep {entry['step'] + 1}: {len(entry['candidates'])} distinct candidates"
                     + (f", {len(entry['carried'])} finished beams carried" if entry["carried"] else ""))
        lines.append(f"  {'':2s}{'prefix + candidate step':{width}s} {'p(step)':>8s} {'goal G':>7s} {'step s':>7s}"
                     f" {'beam':>7s}")
        rows = sorted(entry["candidates"], key=lambda c: -c["beam_score"])
        for c in rows:
            mark = "*" if c["kept"] else " "
            text = flat(c["prefix"] + "|" + c["step"].replace("</s>", "<eos>"))[-width:]
            lines.append(f"  {mark} {text:{width}s} {math.exp(c['mean_logprob']):8.3f} {c['goal']:7.3f}"
                         f" {c['step_score']:7.3f} {c['beam_score']:7.3f}")
        for c in entry["carried"]:
            mark = "*" if c["kept"] else " "
            lines.append(f"  {mark} {flat(c['text'] + ' (finished)')[-width:]:{width}s} {'':8s} {'':7s} {'':7s}"
                         f" {c['beam_score']:7.3f}")
    lines.append("\n(* = kept; '|' separates the beam's prefix from the candidate step)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ baselines


@dataclass
class Sampled:
    """N sampled responses per prompt, with the reward model's reward and final state for each (when scored).
    `policy_tokens`: tokens sampled per prompt; `policy_tokens_processed`: those plus the N encodings of
    BOS + prompt."""

    prompts: list[str]
    responses: list[list[str]]
    policy_tokens: list[int]
    rewards: torch.Tensor | None = None   # (P, N)
    final_hidden: torch.Tensor | None = None  # (P, N, D)
    rm_tokens: list[int] | None = None
    policy_tokens_processed: list[int] | None = None


def sample_solutions(policy, tokenizer, prompts: list[str], n: int, temperature: float, max_new_tokens: int,
                     seed: int, suppress_tokens: list[str] | None = None, batch_size: int = 256) -> Sampled:
    """`n` whole solutions per prompt (plain sampling), with the policy tokens each prompt sampled (response + EOS)
    and processed (those plus the `n` encodings of BOS + prompt, one per sample)."""
    from .generation import sample_responses

    outs = sample_responses(policy, tokenizer, prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, suppress_tokens=suppress_tokens, seed=seed, desc="sampling")
    tokens = [sum(min(max_new_tokens, len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1) for r in rs)
              for rs in outs]
    bos = 1 if tokenizer.bos_token_id is not None else 0
    processed = [t + n * (bos + len(tokenizer(q, add_special_tokens=False)["input_ids"]))
                 for q, t in zip(prompts, tokens)]
    return Sampled(prompts, outs, tokens, policy_tokens_processed=processed)


@torch.no_grad()
def score_samples(model, tokenizer, sampled: Sampled, batch_size: int = 256) -> Sampled:
    """Fill in the reward (P, N) and the final state at the EOS (P, N, D) of every sampled response, and the
    tokens each prompt ran through the reward model."""
    P, N = len(sampled.prompts), len(sampled.responses[0]) if sampled.responses else 0
    flat = [(i, r if r else " ") for i, rs in enumerate(sampled.responses) for r in rs]
    rewards, hidden, rm_tokens = [], [], [0] * P
    dev = next(model.parameters()).device
    for s in range(0, len(flat), batch_size):
        seqs = [encode(tokenizer, sampled.prompts[i], r) for i, r in flat[s:s + batch_size]]
        for (i, _), e in zip(flat[s:s + batch_size], seqs):
            rm_tokens[i] += len(e.input_ids)
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        last = b["attention_mask"].sum(-1) - 1
        rewards.append(out.rewards.float().cpu())
        hidden.append(out.hidden[torch.arange(len(seqs), device=dev), last].float().cpu())
    sampled.rewards = torch.cat(rewards).view(P, N)
    sampled.final_hidden = torch.cat(hidden).view(P, N, -1)
    sampled.rm_tokens = rm_tokens
    return sampled


def pick(sampled: Sampled, by: torch.Tensor) -> list[str]:
    """The response with the highest `by` (P, N) per prompt (first on ties)."""
    idx = by.argmax(-1).tolist()
    return [rs[k] for rs, k in zip(sampled.responses, idx)]


# ------------------------------------------------------------------------------------------------ judges


Judge = Callable[[list[str], list[str]], list[dict[str, float]]]
"""A judge takes prompts and responses and returns one dict of attribute scores per response."""

JUDGES: dict[str, Callable[..., Judge]] = {}


def register_judge(name: str, factory: Callable[..., Judge]) -> None:
    """Make a judge available to `SteeringParams.judge` by name (an LLM judge, a human-label lookup, ...).

    `factory()` returns the judge; a factory with one parameter is given the run's `SteeringSetup` (its params in
    `setup.params`, prompts, reward models, labelled examples). A judge may list the attributes it scores in an
    `attributes` attribute, so a params file aiming at one it lacks fails before anything is decoded (otherwise it is
    asked once, on the first labelled example, to find out), and may say what its scores are in a `note`
    (written to metrics.json)."""
    JUDGES[name] = factory


def exact_toy_judge() -> Judge:
    """The toy world's exact scorers (gcrm_kit.toyworld.attributes), as floats 0/1."""
    from .toyworld.attributes import score_attributes

    def judge(prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in score_attributes(p, r).items()} for p, r in zip(prompts, responses)]

    return judge


register_judge("exact", exact_toy_judge)


def get_judge(name: str, setup: "SteeringSetup | None" = None) -> Judge:
    """The judge registered as `name`: its factory called with `setup` when it takes one argument, else with none."""
    if name not in JUDGES:
        raise KeyError(f"unknown judge {name!r}; registered: {sorted(JUDGES)} (see steering.register_judge)")
    factory = JUDGES[name]
    try:
        takes_setup = len(inspect.signature(factory).parameters) >= 1
    except (TypeError, ValueError):  # a builtin or C callable: called without arguments
        takes_setup = False
    return factory(setup) if takes_setup else factory()


class RewardModelProxyJudge:
    """Real data without a paid judge: PROXIES read off one reward model, not ratings of helpfulness or complexity.

    For every (prompt, response), in the kit's format (prompt + response + EOS) through the reward model
    `p.judge_reward_model` (empty: the first of `p.reward_models`; its first seed):

    - `proxy_reward`: its final reward (the HH-RLHF preference it was trained on, not a HelpSteer rating);
    - `proxy_<attribute>`, for every attribute with both a high (`value: true`) and a low (`value: false`)
      prototype in `p.prototypes`: 1 when the EOS state is nearer (by cosine) the high-rated prototypes than the
      low-rated ones (mean cosine over each side), else 0, so its mean over responses is a share;
    - `proxy_<attribute>_margin`: that difference of mean cosines itself.

    The prototypes are this reward model's, built from the same rated responses as the decoder's (not saved). When
    the judge's reward model also guides a decoder, its proxy reads the same kind of states the decoder steered
    towards: a gain on it is necessary for steering to have worked, not evidence that a person (or GPT-4, as in the
    paper) would rate the answers higher. The model is loaded once and kept on the CPU between calls when decoding
    runs on an accelerator."""

    note = ("PROXIES, not ratings: proxy_reward is the judge reward model's final reward; proxy_<attribute> is 1 "
            "when the response's EOS state is nearer (cosine) that reward model's high-rated prototype than its "
            "low-rated one. Not the paper's GPT-4 judgement; register a real judge with steering.register_judge.")

    def __init__(self, setup: "SteeringSetup"):
        p = setup.params
        if p is None or setup.labels is None:
            raise ValueError("judge rm_proxy: needs a real-data setup (rated labelled responses; see prepare)")
        self.setup, self.p = setup, p
        self.rm_name = p.judge_reward_model or p.reward_models[0]
        self.rm_seed = setup.seeds[0]
        specs = {}
        for spec in p.prototypes:
            specs.setdefault(spec.attribute, {True: [], False: []})[bool(spec.value)].append(spec.name)
        self.sides = {a: sides for a, sides in specs.items() if sides[True] and sides[False]}
        self.attributes = ["proxy_reward"] + [k for a in self.sides for k in (f"proxy_{a}", f"proxy_{a}_margin")]
        self._model = None
        self._tokenizer = None
        self._protos: dict[str, torch.Tensor] = {}

    def _load(self):
        if self._model is None:
            model, tok = self.setup.load_reward_model(self.rm_name, self.rm_seed)
            protos = build_prototypes(self.p, self.setup, model, tok, self.rm_name, self.rm_seed,
                                      labels=self.setup.labels)
            self._protos = {k: v.vector.float().cpu() for k, v in protos.items()}
            self._model, self._tokenizer = model, tok
        if self._model.device != self.setup.device:
            self._model.to(self.setup.device)
        return self._model, self._tokenizer

    def _park(self) -> None:
        if self._model is not None and self.setup.device.type != "cpu":
            self._model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @torch.no_grad()
    def __call__(self, prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        model, tok = self._load()
        try:
            rewards, finals = read_final_states(model, tok, prompts, responses,
                                                batch_size=self.p.sequence_batch_size or 256)
        finally:
            self._park()
        h = F.normalize(finals, dim=-1)
        out = [{"proxy_reward": float(r)} for r in rewards]
        for a, sides in self.sides.items():
            cos = {side: torch.stack([h @ F.normalize(self._protos[n], dim=0) for n in names]).mean(0)
                   for side, names in sides.items()}
            margin = (cos[True] - cos[False]).tolist()
            for o, m in zip(out, margin):
                o[f"proxy_{a}"] = float(m > 0)
                o[f"proxy_{a}_margin"] = float(m)
        return out


register_judge("rm_proxy", RewardModelProxyJudge)


@torch.no_grad()
def read_final_states(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 256
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward (N,) and the final-layer state at the EOS (N, D) of every (prompt, response) in the kit's format
    (an empty response is read as one space), float32 on the CPU, in input order."""
    dev = next(model.parameters()).device
    rewards, hidden = [], []
    for s in range(0, len(prompts), batch_size):
        seqs = [encode(tokenizer, q, r if r else " ") for q, r in zip(prompts[s:s + batch_size],
                                                                     responses[s:s + batch_size])]
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        out = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"])
        last = b["attention_mask"].sum(-1) - 1
        rewards.append(out.rewards.float().cpu())
        hidden.append(out.hidden[torch.arange(len(seqs), device=dev), last].float().cpu())
    if not hidden:
        return torch.zeros(0), torch.zeros(0, model.config.hidden_size)
    return torch.cat(rewards), torch.cat(hidden)


class CachedJudge:
    """A judge that scores each distinct (prompt, response) once and reuses the scores afterwards.

    A judge may be a paid service, and the stage asks for the same examples many times (the labelled examples for
    every reward model and seed, the held-out pairs for every diagnostic, answers several methods share). Each
    call passes only the examples not judged yet, each once, to the wrapped judge, in one call. `calls` counts the
    wrapped judge's calls, `scores` holds every score so far ((prompt, response) -> attribute scores)."""

    def __init__(self, judge: Judge, name: str = ""):
        self.judge = judge
        self.name = name
        self.scores: dict[tuple[str, str], dict[str, float]] = {}
        self.calls = 0

    def __call__(self, prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        keys = list(zip(prompts, responses))
        new = [k for k in dict.fromkeys(keys) if k not in self.scores]
        if new:
            got = self.judge([q for q, _ in new], [r for _, r in new])
            self.calls += 1
            if len(got) != len(new):
                raise ValueError(f"judge {self.name!r} returned {len(got)} scores for {len(new)} responses")
            self.scores.update(zip(new, got))
        return [dict(self.scores[k]) for k in keys]


def attribute_rates(judged: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every attribute over the judged responses (a None, a rating in neither set, is left out)."""
    keys = list(judged[0]) if judged else []
    out = {}
    for k in keys:
        vals = [j[k] for j in judged if j[k] is not None]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def in_set(label: dict, spec) -> bool:
    """Whether an example with scores `label` belongs to prototype `spec` (attribute, value): a None score (real
    data: rated between `rating_low` and `rating_high`) belongs to neither side."""
    v = label[spec.attribute]
    return v is not None and bool(v) == spec.value


def rating_labels(records, high: int, low: int) -> list[dict[str, float | None]]:
    """The labels of rated responses (`real_data.helpsteer_records`: ratings in meta), one dict per record: per
    HelpSteer attribute 1.0 when rated >= `high`, 0.0 when rated <= `low`, None between (as
    `real_data.helpsteer_sets` splits them)."""
    from .real_data import HELPSTEER_ATTRIBUTES, helpsteer_sets

    labels: list[dict[str, float | None]] = [{} for _ in records]
    for a in HELPSTEER_ATTRIBUTES:
        sets = helpsteer_sets(records, a, high, low)
        hi, lo = {id(r) for r in sets["high"]}, {id(r) for r in sets["low"]}
        for lab, r in zip(labels, records):
            lab[a] = 1.0 if id(r) in hi else 0.0 if id(r) in lo else None
    return labels


class Timer:
    """Wall-clock seconds of a block: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


# ------------------------------------------------------------------------------------------------ the notebook's stage
# Notebook 04_steering calls these in turn; `steer(p)` runs them all headless.


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class SteeringSetup:
    """What the comparison builds on: the RM run, its policy, the reward models (name -> [(seed, folder)]), the
    evaluation prompts and the labelled (prompt, response) examples prototypes are built from. `judges` holds
    the run's judges (name -> `CachedJudge`), so every example is judged once per run whatever asks for it."""

    rm_run_dir: Path
    rm_params: object
    policy_dir: Path
    model_dirs: dict[str, list[tuple[int, Path]]]
    prompts: list[str]
    labelled: list[tuple[str, str]]
    device: torch.device
    judges: dict[str, CachedJudge] = field(default_factory=dict)
    kind: str = "toy"
    """`toy` (the toy world) or `real` (a real-data notebook-01 run with `SteeringParams.data`)"""
    labels: list[dict] | None = None
    """real data: the rating labels of `labelled` (`rating_labels`), which replace the judge's; None: judged"""
    heldout: list[tuple[str, str]] = field(default_factory=list)
    """real data: rated (prompt, response) examples for the prototype diagnostics, with `heldout_labels`"""
    heldout_labels: list[dict] = field(default_factory=list)
    params: object = None
    """the SteeringParams of the run (for judges whose factory takes the setup)"""
    labelled_source: str = ""
    """where `labelled` came from (written into every prototype's provenance)"""

    def judge(self, name: str) -> CachedJudge:
        """The judge registered as `name`, made once for this setup and wrapped in a `CachedJudge`."""
        if name not in self.judges:
            self.judges[name] = CachedJudge(get_judge(name, self), name)
        return self.judges[name]

    @property
    def suppress_tokens(self) -> list[str]:
        """Tokens the policy never generates: the toy world's self-correction marks (its base corpus has them,
        sampled solutions must not); none for real data."""
        if self.kind != "toy":
            return []
        from .toyworld import MARK_CHARS

        return list(MARK_CHARS)

    @property
    def seeds(self) -> list[int]:
        return [s for s, _ in next(iter(self.model_dirs.values()))]

    def load_policy(self):
        """(policy, tokenizer). Real data: the checkpoint's own dtype, and the reward models' tokenizer (the
        policy's, with the pad token notebook 01 gave it: Llama 3 has none)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.kind == "toy":
            model = AutoModelForCausalLM.from_pretrained(self.policy_dir).to(self.device).eval()
            return model, AutoTokenizer.from_pretrained(self.policy_dir)
        model = AutoModelForCausalLM.from_pretrained(self.policy_dir, dtype="auto").to(self.device).eval()
        first = next(iter(self.model_dirs.values()))[0][1]
        return model, AutoTokenizer.from_pretrained(first)

    def load_reward_model(self, name: str, seed: int):
        from .models import load_reward_model

        d = dict(self.model_dirs[name])[seed]
        model, tok = load_reward_model(d)
        return model.to(self.device), tok


def prepare(p, run) -> SteeringSetup:
    """Find (or train) the RM run, check the reward models and seeds asked for, draw the evaluation prompts
    (questions of `p.split` not among the RM run's pairs) and collect the labelled examples. Writes
    prompts.json and setup.json into the run folder."""
    from .data import PreferencePair, load_jsonl
    from .rm_runs import policy_dir_of, resolve_rm_run, select_reward_models
    from .toyworld import SPLITS, sample_problem

    rm_dir = resolve_rm_run(p.rm_run, p.rm_params, p.output_root)
    sel = select_reward_models(rm_dir, p.reward_models, p.rm_seeds)
    rp, seeds, chosen = sel.params, sel.seeds, sel.dirs
    model_dirs = {n: list(zip(seeds, ds)) for n, ds in chosen.items()}
    policies = {str(policy_dir_of(d)) for ds in model_dirs.values() for _, d in ds}
    if len(policies) != 1:
        raise ValueError(f"the reward models come from different policies: {sorted(policies)}")
    if rp.data.kind == "real" or p.data.real:
        if rp.data.kind != "real":
            raise ValueError(f"data.prompts / data.labelled are set, but {rm_dir} is a toy-world run: real-data "
                             "steering needs the reward models of a real-data notebook-01 run")
        if not p.data.real:
            raise ValueError(f"{rm_dir} is a real-data notebook-01 run: set data.prompts and data.labelled (e.g. "
                             "HelpSteer, adapter helpsteer) in the params; the toy world's prompts do not apply")
        return _prepare_real(p, run, rm_dir, rp, seeds, model_dirs, Path(policies.pop()))
    pairs = load_jsonl(rm_dir / "data" / "train_pairs.jsonl", PreferencePair)
    held = load_jsonl(rm_dir / "data" / "heldout_pairs.jsonl", PreferencePair)
    seen = {x.prompt for x in pairs + held}
    rng = np.random.default_rng([p.seed, 4])
    prompts: list[str] = []
    for _ in range(200 * p.n_prompts):
        q = sample_problem(rng, SPLITS[p.split]).prompt
        if q not in seen:
            seen.add(q)
            prompts.append(q)
            if len(prompts) == p.n_prompts:
                break
    labelled = [(x.prompt, r) for x in pairs for r in (x.chosen, x.rejected)][:p.prototype_examples]
    setup = SteeringSetup(rm_dir, rp, Path(policies.pop()), model_dirs, prompts, labelled, resolve_device(p.device),
                          params=p)
    run.write_json("prompts.json", prompts)
    run.write_json("setup.json", {"rm_run": str(rm_dir), "policy_dir": str(setup.policy_dir),
                                  "reward_models": {n: [str(d) for _, d in ds] for n, ds in model_dirs.items()},
                                  "seeds": seeds, "n_prompts": len(prompts), "n_labelled": len(labelled),
                                  "device": str(setup.device)})
    return setup


def _prepare_real(p, run, rm_dir: Path, rp, seeds: list[int], model_dirs: dict, policy_dir: Path) -> SteeringSetup:
    """`prepare` for a real-data notebook-01 run: evaluation prompts from `p.data.prompts` (distinct prompts, drawn
    with `p.seed`, none among the labelled responses' prompts, rendered with the policy's chat template as notebook
    01 rendered its prompts), the rated responses of `p.data.labelled` that fall in some prototype's set (the first
    `p.prototype_examples`), labelled by their ratings, and rated held-out responses of `p.data.prompts` (when its
    adapter gives ratings) for the diagnostics."""
    from transformers import AutoTokenizer

    from . import real_data
    from .params import to_dict

    d = p.data
    mode = rp.data.chat_template
    tok = AutoTokenizer.from_pretrained(model_dirs[p.reward_models[0]][0][1])  # the policy's, pad token set
    labelled_raw = real_data.load_adapted(d.labelled, "records")
    labels_all = rating_labels(labelled_raw, d.rating_high, d.rating_low)
    keep = [i for i, lab in enumerate(labels_all) if any(in_set(lab, spec) for spec in p.prototypes)]
    keep = keep[:p.prototype_examples]
    rendered = real_data.apply_chat_template([labelled_raw[i] for i in keep], tok, mode)
    labelled = [(r.prompt, r.response) for r in rendered]
    labels = [labels_all[i] for i in keep]
    seen_raw = {r.prompt for r in labelled_raw}

    records = real_data.load_adapted(d.prompts, "records")
    distinct = [q for q in dict.fromkeys(r.prompt for r in records) if q not in seen_raw]
    order = np.random.default_rng([p.seed, 4]).permutation(len(distinct))
    prompts, too_long = [], 0
    for i in order:
        text = real_data.render_prompt(tok, distinct[i], None, mode)
        if d.max_prompt_tokens and len(tok(text, add_special_tokens=False)["input_ids"]) > d.max_prompt_tokens:
            too_long += 1
            continue
        prompts.append(text)
        if len(prompts) == p.n_prompts:
            break
    if not prompts:
        raise ValueError(f"{d.prompts.source}: no evaluation prompt left ({len(distinct)} distinct prompts not among "
                         f"the labelled ones, {too_long} longer than data.max_prompt_tokens)")

    heldout, heldout_labels = [], []
    if d.heldout_examples and all(a in records[0].meta for a in real_data.HELPSTEER_ATTRIBUTES):
        hl = rating_labels(records, d.rating_high, d.rating_low)
        idx = [i for i, lab in enumerate(hl) if any(in_set(lab, spec) for spec in p.prototypes)][:d.heldout_examples]
        heldout = [(r.prompt, r.response) for r in real_data.apply_chat_template([records[i] for i in idx], tok, mode)]
        heldout_labels = [hl[i] for i in idx]

    source = (f"{d.labelled.source} ({d.labelled.split}): responses rated >= {d.rating_high} (value true) or <= "
              f"{d.rating_low} (value false), first {len(labelled)} in some prototype's set")
    setup = SteeringSetup(rm_dir, rp, policy_dir, model_dirs, prompts, labelled, resolve_device(p.device),
                          kind="real", labels=labels, heldout=heldout, heldout_labels=heldout_labels, params=p,
                          labelled_source=source)
    run.write_json("prompts.json", prompts)
    run.write_json("setup.json", {"rm_run": str(rm_dir), "policy_dir": str(policy_dir), "kind": "real",
                                  "reward_models": {n: [str(x) for _, x in ds] for n, ds in model_dirs.items()},
                                  "seeds": seeds, "n_prompts": len(prompts), "n_labelled": len(labelled),
                                  "n_heldout": len(heldout), "prompts_source": to_dict(d.prompts),
                                  "labelled_source": source, "prompts_too_long": too_long,
                                  "chat_template": mode if getattr(tok, "chat_template", None) else "none",
                                  "device": str(setup.device)})
    return setup


def label_table(p, setup: SteeringSetup) -> list[dict[str, float]]:
    """The labels of the labelled examples (one dict per `setup.labelled` entry, in order): the judge's scores,
    judged once per run (the setup's `CachedJudge`) and reused by every prototype build, count and overview; or,
    on real data, their ratings (`setup.labels`; the judge is not asked). Checks that the labels have every
    prototype's attribute and that the judge scores every target's aim."""
    if setup.labels is not None:
        return _check_real_labels(p, setup)
    judged = setup.judge(p.judge)([q for q, _ in setup.labelled], [r for _, r in setup.labelled])
    have = set(judged[0]) if judged else set()
    for spec in p.prototypes:
        if judged and spec.attribute not in have:
            raise KeyError(f"prototype {spec.name!r}: the judge {p.judge!r} has no attribute {spec.attribute!r}; "
                           f"it scores {sorted(have)}")
    for t in p.targets:
        if judged and t.aim not in have:
            raise KeyError(f"target {t.name!r}: the judge {p.judge!r} has no attribute {t.aim!r} to aim at; "
                           f"it scores {sorted(have)}")
    return judged


def judge_attributes(setup: SteeringSetup, name: str) -> set[str]:
    """The attributes judge `name` scores: the ones it lists (`attributes`), else the keys of its scores of the
    first labelled example (asked once, through the run's cache)."""
    judge = setup.judge(name)
    listed = getattr(judge.judge, "attributes", None)
    if listed is not None:
        return set(listed)
    q, r = setup.labelled[0]
    return set(judge([q], [r])[0])


def _check_real_labels(p, setup: SteeringSetup) -> list[dict]:
    labels = setup.labels
    have = set(labels[0]) if labels else set()
    for spec in p.prototypes:
        if labels and spec.attribute not in have:
            raise KeyError(f"prototype {spec.name!r}: the labelled responses carry no rating {spec.attribute!r}; "
                           f"they have {sorted(have)}")
    scored = judge_attributes(setup, p.judge)
    for t in p.targets:
        if t.aim not in scored:
            raise KeyError(f"target {t.name!r}: the judge {p.judge!r} has no attribute {t.aim!r} to aim at; it scores "
                           f"{sorted(scored)}")
    return labels


def label_counts(p, setup: SteeringSetup, labels: list[dict] | None = None) -> dict[str, dict]:
    """For each prototype, how many labelled examples it is built from. `labels`: the judge's scores of
    `setup.labelled` (`label_table`; judged, once per run, when not given)."""
    judged = label_table(p, setup) if labels is None else labels
    out = {}
    for spec in p.prototypes:
        n = sum(in_set(j, spec) for j in judged)
        out[spec.name] = {"attribute": spec.attribute, "value": spec.value, "count": n}
    return out


@torch.no_grad()
def build_prototypes(p, setup: SteeringSetup, model, tokenizer, rm_name: str, seed: int, save_dir: Path | None = None,
                     labels: list[dict] | None = None) -> dict:
    """One prototype per `p.prototypes` entry for this reward model: the mean pooled final state over the labelled
    responses whose attribute equals the spec's value. Saved (with provenance) under `save_dir`/prototypes/
    (`qvalues.Prototype.save` adds that folder). `labels`: the judge's scores of `setup.labelled` (`label_table`;
    taken from the run's judge cache when not given, so the examples are judged once, not once per model).
    Returns name -> qvalues.Prototype."""
    from .qvalues import Prototype, pooled_states, prototype_provenance

    judged = label_table(p, setup) if labels is None else labels
    kw = {"batch_size": p.sequence_batch_size} if p.sequence_batch_size else {}
    states = pooled_states(model, tokenizer, [q for q, _ in setup.labelled], [r for _, r in setup.labelled],
                           pooling=p.prototype_pooling, **kw)
    out = {}
    for spec in p.prototypes:
        sel = torch.tensor([in_set(j, spec) for j in judged])
        if not bool(sel.any()):
            raise ValueError(f"prototype {spec.name!r}: no labelled example has {spec.attribute} = {spec.value}")
        prov = prototype_provenance(model, p.prototype_pooling, int(sel.sum()), extra={
            "attribute": spec.attribute, "value": spec.value,
            "judge": p.judge if setup.labels is None else "none (labelled by their ratings)", "reward_model": rm_name,
            "rm_seed": seed, "checkpoint": str(dict(setup.model_dirs[rm_name])[seed]),
            "data": setup.labelled_source
            or f"both sides of {setup.rm_run_dir / 'data' / 'train_pairs.jsonl'} (first {len(setup.labelled)})"})
        proto = Prototype(spec.name, states[sel].mean(0), prov)
        if save_dir is not None:
            proto.save(save_dir)
        out[spec.name] = proto
    return out


def goal_terms(p, prototypes: dict) -> dict[str, GoalTerm]:
    return {t.name: GoalTerm.from_prototypes(t.name, prototypes, t.weights) for t in p.targets}


def target_rating(p, target):
    """Real data: the prototype a target steers towards most (its largest positive weight), whose attribute and
    value say which rated responses count as positives in the diagnostics. None when no weight is positive."""
    specs = {s.name: s for s in p.prototypes}
    name, w = max(target.weights.items(), key=lambda kv: kv[1])
    return specs[name] if w > 0 else None


@torch.no_grad()
def prototype_diagnostics(p, setup: SteeringSetup, model, tokenizer, goals: dict[str, GoalTerm]) -> dict:
    """Does each goal point at its attribute? AUROC of the goal term G, read at the EOS (`final`) and at every
    step's end inside the response (`steps`, the states the decoder scores mid-solution).

    Toy world: on the RM run's held-out pairs (both sides, questions never used to build prototypes), for the
    target's `aim` as the judge scores it. Real data: on rated held-out responses (`setup.heldout`, never used to
    build prototypes), for the rating of the prototype the target steers towards most (`target_rating`: rated high
    vs low; responses rated in between are left out), so the check uses the ratings, not the judge's proxies."""
    from .evaluation import auroc

    if setup.labels is None:
        from .data import PreferencePair, load_jsonl

        held = load_jsonl(setup.rm_run_dir / "data" / "heldout_pairs.jsonl", PreferencePair)
        pairs = [(x.prompt, r) for x in held for r in (x.chosen, x.rejected)]
        judged = setup.judge(p.judge)([q for q, _ in pairs], [r for _, r in pairs])
        row_labels = {t.name: [bool(j[t.aim]) for j in judged] for t in p.targets}
        described = {t.name: t.aim for t in p.targets}
    else:
        pairs = list(setup.heldout)
        row_labels, described = {}, {}
        for t in p.targets:
            spec = target_rating(p, t)
            row_labels[t.name] = [None if spec is None or j[spec.attribute] is None else in_set(j, spec)
                                  for j in setup.heldout_labels]
            described[t.name] = ("" if spec is None else
                                 f"{spec.attribute} rated {'high' if spec.value else 'low'} (vs "
                                 f"{'low' if spec.value else 'high'})")
    delims = torch.tensor(step_end_ids(tokenizer, p.beam.step_end, p.beam.step_end_match))
    dev = next(model.parameters()).device
    bs = p.sequence_batch_size or 256
    finals = {t: ([], []) for t in goals}
    steps = {t: ([], []) for t in goals}
    for s in range(0, len(pairs), bs):
        chunk = pairs[s:s + bs]
        seqs = [encode(tokenizer, q, r) for q, r in chunk]
        b = {k: v.to(dev) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        h = reward_forward(model, b["input_ids"], b["attention_mask"], b["position_ids"]).hidden
        last = b["attention_mask"].sum(-1) - 1
        is_step = torch.isin(b["input_ids"], delims.to(dev)) & (b["response_mask"] == 1)
        for name, g in goals.items():
            G = g(h).cpu()
            at_end = G[torch.arange(len(chunk)), last.cpu()].tolist()
            for row in range(len(chunk)):
                lab = row_labels[name][s + row]
                if lab is None:
                    continue
                finals[name][0].append(at_end[row])
                finals[name][1].append(lab)
                vals = G[row][is_step[row].cpu()].tolist()
                steps[name][0].extend(vals)
                steps[name][1].extend([lab] * len(vals))
    out = {}
    for t in p.targets:
        out[t.name] = {"aim": t.aim, "final_auroc": auroc(*finals[t.name]) if finals[t.name][0] else float("nan"),
                       "steps_auroc": auroc(*steps[t.name]) if steps[t.name][0] else float("nan"),
                       "n_responses": len(finals[t.name][0])}
        if setup.labels is not None:
            out[t.name]["labels"] = described[t.name]
    return out


def _rates(judge: Judge, prompts: list[str], responses: list[str]) -> dict[str, float]:
    return attribute_rates(judge(prompts, responses))


def _row(method: str, seed: int, prompts: list[str], responses: list[str], judge: Judge, policy_tokens: list[int],
         policy_processed: list[int], rm_tokens: list[int], seconds: float, rm: str = "", target: str = "",
         **extra) -> dict:
    """One result row: attribute rates, and per prompt the policy tokens sampled (`policy_tokens`, what best-of-N's
    N is matched on), the policy tokens processed (`policy_tokens_processed`: sampled + prompt/prefix tokens
    encoded), reward-model tokens and seconds."""
    return {"method": method, "reward_model": rm, "target": target, "seed": seed,
            **{f"rate_{k}": v for k, v in _rates(judge, prompts, responses).items()},
            "policy_tokens": float(np.mean(policy_tokens)),
            "policy_tokens_processed": float(np.mean(policy_processed)), "rm_tokens": float(np.mean(rm_tokens)),
            "seconds": seconds, "seconds_per_prompt": seconds / max(1, len(prompts)), **extra}


def decode_in_batches(policy, tokenizer, prompts: list[str], settings: BeamSettings, batch_size: int,
                      scorer: ContextScorer | None = None, goal: GoalTerm | None = None, seed: int = 0,
                      suppress_tokens: list[str] | None = None, desc: str = "guided decoding") -> list[Decoded]:
    """`guided_decode` over `prompts` in batches of `batch_size` prompts, with a progress bar."""
    from tqdm.auto import tqdm

    out = []
    for k, s in enumerate(tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False)):
        out += guided_decode(policy, tokenizer, prompts[s:s + batch_size], settings, scorer, goal, seed=seed + k,
                             suppress_tokens=suppress_tokens)
    return out


def beam_settings(p) -> BeamSettings:
    from .params import to_dict

    return BeamSettings(**to_dict(p.beam))


@dataclass
class SteeringResult:
    """Rows (one per method, reward model, target and seed), their summary over seeds, the gains of guided
    decoding, prototype diagnostics, and the decoded responses (method key -> seed -> responses)."""

    run_dir: Path
    rows: list[dict]
    summary: list[dict]
    gains: list[dict]
    diagnostics: dict
    best_of_n: dict[int, int]
    responses: dict = field(default_factory=dict)
    cache_check: dict = field(default_factory=dict)


def compare_methods(p, run, setup: SteeringSetup) -> SteeringResult:
    """Every method on the same prompts, for every seed: plain sampling, beam search on the policy alone, guided
    decoding with each reward model towards each target, then best-of-N (N matched to the policy tokens the guided
    decoder *sampled*, unless `p.best_of_n` is set; the prefix tokens it re-encodes at every step are reported as
    `policy_tokens_processed` but not matched) reranked by each reward model's final reward and by each goal term.
    Prototypes are built and saved per reward model and seed under run/prototypes/<rm>_seed<k>/prototypes/. The
    labelled examples are judged once (`label_table`) and every response through the setup's `CachedJudge`.
    Writes responses.json."""
    judge = setup.judge(p.judge)
    labels = label_table(p, setup)
    settings = beam_settings(p)
    policy, tok = setup.load_policy()
    prompts = setup.prompts
    suppress = setup.suppress_tokens
    max_new = settings.max_steps * settings.max_step_tokens
    sample_kw = {"batch_size": p.sequence_batch_size} if p.sequence_batch_size else {}
    score_kw = dict(sample_kw)
    rows, responses, diagnostics, bon_n = [], {}, {}, {}
    for seed in setup.seeds:
        dseed = p.seed * 1000 + seed
        with Timer() as t:
            plain = sample_solutions(policy, tok, prompts, 1, settings.temperature, max_new, dseed, suppress,
                                     **sample_kw)
        plain_resp = [r[0] for r in plain.responses]
        rows.append(_row("plain", seed, prompts, plain_resp, judge, plain.policy_tokens, plain.policy_tokens_processed,
                         [0] * len(prompts), t.seconds))
        responses.setdefault("plain", {})[seed] = plain_resp
        with Timer() as t:
            dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, seed=dseed, suppress_tokens=suppress,
                                    desc="beam search, policy only")
        rows.append(_row("beam_policy_only", seed, prompts, [d.response for d in dec], judge,
                         [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec], [0] * len(prompts),
                         t.seconds))
        responses.setdefault("beam_policy_only", {})[seed] = [d.response for d in dec]
        if p.exact_oracle:
            with Timer() as t:
                dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, ExactPrefixScorer(tok),
                                        exact_goal, seed=dseed, suppress_tokens=suppress, desc="guided: exact oracle")
            rows.append(_row("guided_oracle", seed, prompts, [d.response for d in dec], judge,
                             [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec],
                             [0] * len(prompts), t.seconds, "", "error_free"))
            responses.setdefault("guided_oracle", {})[seed] = [d.response for d in dec]
        models, guided_tokens = {}, []
        for name in p.reward_models:
            model, rtok = setup.load_reward_model(name, seed)
            if rtok.get_vocab() != tok.get_vocab():
                raise ValueError(f"reward model {name} seed {seed} does not share the policy's tokenizer; the decoder "
                                 "passes token ids from one to the other")
            protos = build_prototypes(p, setup, model, rtok, name, seed, run.dir / "prototypes" / f"{name}_seed{seed}",
                                      labels=labels)
            goals = goal_terms(p, protos)
            diagnostics[f"{name}_seed{seed}"] = prototype_diagnostics(p, setup, model, rtok, goals)
            models[name] = (model, goals)
            for target, goal in goals.items():
                scorer = ContextScorer(model, use_cache=p.use_rm_cache, pooling=p.step_pooling)
                with Timer() as t:
                    dec = decode_in_batches(policy, tok, prompts, settings, p.batch_size, scorer, goal, seed=dseed,
                                            suppress_tokens=suppress, desc=f"guided: {name} -> {target}")
                guided_tokens += [d.policy_tokens for d in dec]
                rows.append(_row("guided", seed, prompts, [d.response for d in dec], judge,
                                 [d.policy_tokens for d in dec], [d.policy_tokens_processed for d in dec],
                                 [d.rm_tokens for d in dec], t.seconds, name, target,
                                 truncated=float(np.mean([d.truncated for d in dec])),
                                 final_goal=float(np.nanmean([d.final_goal for d in dec]))))
                responses.setdefault(f"guided/{name}/{target}", {})[seed] = [d.response for d in dec]
        # N is matched on policy tokens *sampled* (not on the prefix tokens the step-level decoder re-encodes)
        n = p.best_of_n or max(1, int(round(np.mean(guided_tokens) / max(1e-9, np.mean(plain.policy_tokens)))))
        bon_n[seed] = n
        with Timer() as t_sample:
            sampled = sample_solutions(policy, tok, prompts, n, settings.temperature, max_new, dseed + 1, suppress,
                                       **sample_kw)
        for name, (model, goals) in models.items():
            with Timer() as t:
                score_samples(model, tok, sampled, **score_kw)
            secs = t_sample.seconds + t.seconds
            resp = pick(sampled, sampled.rewards)
            rows.append(_row("best_of_n", seed, prompts, resp, judge, sampled.policy_tokens,
                             sampled.policy_tokens_processed, sampled.rm_tokens, secs, name, "", n=n))
            responses.setdefault(f"best_of_n/{name}", {})[seed] = resp
            for target, goal in goals.items():
                resp = pick(sampled, goal(sampled.final_hidden))
                rows.append(_row("best_of_n_goal", seed, prompts, resp, judge, sampled.policy_tokens,
                                 sampled.policy_tokens_processed, sampled.rm_tokens, secs, name, target, n=n))
                responses.setdefault(f"best_of_n_goal/{name}/{target}", {})[seed] = resp
    summary = summarise(rows)
    gains = guided_gains(rows, p.targets)
    result = SteeringResult(run.dir, rows, summary, gains, diagnostics, bon_n, responses)
    run.write_json("responses.json", {"prompts": prompts, "responses": responses})
    return result


METHOD_ORDER = ("plain", "best_of_n", "best_of_n_goal", "beam_policy_only", "guided", "guided_oracle")


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds of every rate and compute figure, per (method, reward model, target)."""
    from .evaluation import mean_std

    keys = sorted(dict.fromkeys((r["method"], r["reward_model"], r["target"]) for r in rows),
                  key=lambda k: METHOD_ORDER.index(k[0]) if k[0] in METHOD_ORDER else len(METHOD_ORDER))
    out = []
    for method, rm, target in keys:
        rs = [r for r in rows if (r["method"], r["reward_model"], r["target"]) == (method, rm, target)]
        entry = {"method": method, "reward_model": rm, "target": target, "n_seeds": len(rs)}
        for k in rs[0]:
            if k.startswith("rate_") or k in ("policy_tokens", "policy_tokens_processed", "rm_tokens", "seconds",
                                              "seconds_per_prompt", "n", "truncated", "final_goal"):
                mean, std, _ = mean_std([r[k] for r in rs])
                entry[k] = {"mean": mean, "std": std}
        out.append(entry)
    return out


def guided_gains(rows: list[dict], targets) -> list[dict]:
    """For each guided run (reward model, target): the gain on the target's aim attribute, and on correctness when
    the judge scores `correct`, over plain sampling, best-of-N by reward (same reward model), best-of-N by the same
    goal, and beam search on the policy alone, paired by seed (mean and std of the per-seed differences, in points,
    and relative in %), with the compute ratios (policy tokens sampled and processed, reward-model tokens,
    seconds). `attributes` lists the attributes of each entry."""
    from .evaluation import mean_std

    aims = {t.name: t.aim for t in targets}

    def find(method, seed, rm="", target=""):
        return next(r for r in rows if r["method"] == method and r["seed"] == seed and r["reward_model"] == rm
                    and r["target"] == target)

    out = []
    for rm, target in dict.fromkeys((r["reward_model"], r["target"]) for r in rows if r["method"] == "guided"):
        gs = [r for r in rows if r["method"] == "guided" and r["reward_model"] == rm and r["target"] == target]
        for base, brm, btarget in (("plain", "", ""), ("best_of_n", rm, ""), ("best_of_n_goal", rm, target),
                                   ("beam_policy_only", "", "")):
            pairs = [(g, find(base, g["seed"], brm, btarget)) for g in gs]
            entry = {"reward_model": rm, "target": target, "aim": aims[target], "baseline": base,
                     "n_seeds": len(pairs)}
            scored = [a for a in dict.fromkeys([aims[target], "correct"])
                      if all(f"rate_{a}" in r for pair in pairs for r in pair)]
            if aims[target] not in scored:
                raise KeyError(f"target {target!r}: the judge gave no {aims[target]!r} (its aim) to every row")
            entry["attributes"] = scored
            for attr in scored:
                k = f"rate_{attr}"
                diff = [g[k] - b[k] for g, b in pairs]
                rel = [100.0 * (g[k] - b[k]) / b[k] if b[k] > 0 else float("nan") for g, b in pairs]
                m, s, _ = mean_std(diff)
                mr, sr, _ = mean_std(rel)
                entry[attr] = {"guided": mean_std([g[k] for g, _ in pairs])[0],
                               "baseline": mean_std([b[k] for _, b in pairs])[0],
                               "gain_points": {"mean": 100 * m, "std": 100 * s}, "gain_relative_pct": {"mean": mr,
                                                                                                       "std": sr}}
            for k in ("policy_tokens", "policy_tokens_processed", "rm_tokens", "seconds"):
                if not all(k in r for pair in pairs for r in pair):
                    continue
                ratios = [g[k] / b[k] if b[k] > 0 else float("nan") for g, b in pairs]
                entry[f"{k}_ratio"] = mean_std(ratios)[0]
            tot = [(g["policy_tokens"] + g["rm_tokens"]) / (b["policy_tokens"] + b["rm_tokens"]) for g, b in pairs]
            entry["total_tokens_ratio"] = mean_std(tot)[0]
            out.append(entry)
    return out


def check_cache(p, setup: SteeringSetup, n_prompts: int = 8) -> dict:
    """Guided decoding with and without the reward model's cache on the first prompts (first reward model, seed
    and target, same sampling seed): the scores must agree and the responses be the same. Returns the largest
    score difference, whether every response matched, and the reward-model tokens of each."""
    policy, tok = setup.load_policy()
    name, seed = p.reward_models[0], setup.seeds[0]
    model, rtok = setup.load_reward_model(name, seed)
    goal = goal_terms(p, build_prototypes(p, setup, model, rtok, name, seed, labels=label_table(p, setup)))[
        p.targets[0].name]
    prompts = setup.prompts[:n_prompts]
    outs = {}
    for use_cache in (True, False):
        scorer = ContextScorer(model, use_cache=use_cache, pooling=p.step_pooling)
        outs[use_cache] = guided_decode(policy, tok, prompts, beam_settings(p), scorer, goal, seed=p.seed,
                                        suppress_tokens=setup.suppress_tokens)
    a, b = outs[True], outs[False]
    return {"prompts": len(prompts), "reward_model": name, "seed": seed, "target": p.targets[0].name,
            "max_abs_score_diff": max(abs(x.score - y.score) for x, y in zip(a, b)),
            "same_responses": all(x.response == y.response for x, y in zip(a, b)),
            "rm_tokens_cached": sum(x.rm_tokens for x in a), "rm_tokens_full": sum(y.rm_tokens for y in b)}


def worked_example(p, setup: SteeringSetup, prompt_index: int = 0, reward_model: str | None = None,
                   target: str | None = None, width: int | None = None) -> str:
    """Decode one prompt with the first reward model, seed and target (or those named) and return the beam's
    evolution as text (`format_trace`, `width` characters of each candidate: default 34 in the toy world, 72 on
    real data), followed by the answer and the judge's scores."""
    policy, tok = setup.load_policy()
    name = reward_model or p.reward_models[0]
    seed = setup.seeds[0]
    model, rtok = setup.load_reward_model(name, seed)
    tname = target or p.targets[0].name
    goal = goal_terms(p, build_prototypes(p, setup, model, rtok, name, seed, labels=label_table(p, setup)))[tname]
    prompt = setup.prompts[prompt_index]
    trace: list = []
    dec = guided_decode(policy, tok, [prompt], beam_settings(p), ContextScorer(model, pooling=p.step_pooling), goal,
                        seed=p.seed, suppress_tokens=setup.suppress_tokens, trace_prompts=(0,), trace=trace)[0]
    scores = setup.judge(p.judge)([prompt], [dec.response])[0]
    head = (f"reward model {name} (seed {seed}), goal {tname!r} = "
            + " ".join(f"{w:+g}*{k}" for k, w in next(t for t in p.targets if t.name == tname).weights.items())
            + f", r = {goal_ratio(p.beam.confidence_ratio):.2f}")
    width = width or (34 if setup.kind == "toy" else 72)
    return (head + "\n" + format_trace(trace, prompt, width) + f"\n\nanswer: {dec.response}   scores: {scores}"
            + f"\npolicy tokens sampled: {dec.policy_tokens} (processed, with the prefixes re-encoded at every step:"
            f" {dec.policy_tokens_processed}), reward-model tokens: {dec.rm_tokens}")


def attribute_overview(p, setup: SteeringSetup, labels: list[dict] | None = None):
    """The judge's attributes: their description (toy attributes) and their share among the labelled examples,
    with how many examples each prototype is built from (pandas DataFrame). `labels`: `label_table(p, setup)`
    (taken from the run's judge cache when not given)."""
    import pandas as pd

    from .toyworld.attributes import ATTRIBUTES

    judged = label_table(p, setup) if labels is None else labels
    rates = attribute_rates(judged)
    protos = {s.attribute: [] for s in p.prototypes}
    for s in p.prototypes:
        n = sum(in_set(j, s) for j in judged)
        protos[s.attribute].append(f"{s.name} ({s.attribute} = {s.value}: {n} examples)")
    if setup.labels is None:
        return pd.DataFrame([{"attribute": k, "description": ATTRIBUTES[k].description if k in ATTRIBUTES else "",
                              "share of labelled examples": round(v, 3), "prototypes": ", ".join(protos.get(k, []))}
                             for k, v in rates.items()]).set_index("attribute")
    d = p.data
    rated = {k: sum(j[k] is not None for j in judged) for k in rates}
    return pd.DataFrame([{"attribute": k, "description": HELPSTEER_DESCRIPTIONS.get(k, ""),
                          f"share rated >= {d.rating_high} among those rated >= {d.rating_high} or <= {d.rating_low}":
                          round(v, 3) if v == v else v, "examples rated high or low": rated[k],
                          "prototypes": ", ".join(protos.get(k, []))}
                         for k, v in rates.items()]).set_index("attribute")


HELPSTEER_DESCRIPTIONS = {
    "helpfulness": "HelpSteer rating 0-4: overall helpfulness of the response to the prompt",
    "correctness": "HelpSteer rating 0-4: inclusion of all pertinent facts without errors",
    "coherence": "HelpSteer rating 0-4: consistency and clarity of expression",
    "complexity": "HelpSteer rating 0-4: intellectual depth needed to write the response (basic language to "
                  "domain expertise)",
    "verbosity": "HelpSteer rating 0-4: amount of detail relative to what the prompt asks",
}


def diagnostics_table(diagnostics: dict):
    """Prototype diagnostics (from `prototype_diagnostics`, one dict per reward model or a dict of them) as a
    DataFrame: AUROC of each goal for its aim at the EOS and at the step ends inside the response."""
    import pandas as pd

    if diagnostics and "aim" in next(iter(diagnostics.values())):
        diagnostics = {"": diagnostics}
    rows = [{"reward model": m, "goal": t, "aim": d.get("labels") or d["aim"],
             "AUROC at the EOS": round(d["final_auroc"], 3), "AUROC at step ends": round(d["steps_auroc"], 3)}
            for m, ds in diagnostics.items() for t, d in ds.items()]
    return pd.DataFrame(rows)


def has_attribute(summary_or_rows: list[dict], attribute: str) -> bool:
    """Whether the judge scored `attribute` in every entry (summary entries or rows)."""
    return bool(summary_or_rows) and all(f"rate_{attribute}" in e for e in summary_or_rows)


def reported_attributes(p, result: SteeringResult) -> list[str]:
    """The attributes the comparison reports: every target's aim (from the params), then correctness when the
    judge scores `correct` (and the proxy reward with the `rm_proxy` judge); only those the judge scored."""
    return _scored(result, [t.aim for t in p.targets] + ["correct", "proxy_reward"])


def _scored(result: SteeringResult, wanted: list[str]) -> list[str]:
    """`wanted` without repeats, keeping only the attributes the judge scored."""
    return [a for a in dict.fromkeys(wanted) if has_attribute(result.summary, a)]


def results_table(result: SteeringResult, attributes: tuple[str, ...] | list[str] | None = None):
    """Mean ± std over seeds of attribute rates and compute per method (pandas DataFrame): policy tokens sampled
    per prompt (what best-of-N's N is matched on), policy tokens processed (sampled + prompt/prefix tokens each
    `generate` call encoded), reward-model tokens and seconds. `attributes`: default every one the judge scored."""
    import pandas as pd

    rows = []
    for e in result.summary:
        attrs = attributes or tuple(k[5:] for k in e if k.startswith("rate_"))
        row = {"method": e["method"], "reward model": e["reward_model"], "target": e["target"]}
        for a in attrs:
            v = e[f"rate_{a}"]
            row[a] = f"{v['mean']:.3f} ± {v['std']:.3f}"
        row["policy tok/prompt"] = f"{e['policy_tokens']['mean']:.1f}"
        if "policy_tokens_processed" in e:
            row["policy tok processed/prompt"] = f"{e['policy_tokens_processed']['mean']:.1f}"
        row["RM tok/prompt"] = f"{e['rm_tokens']['mean']:.1f}"
        row["seconds"] = f"{e['seconds']['mean']:.1f} ± {e['seconds']['std']:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def gains_table(result: SteeringResult):
    """Gains of guided decoding over each baseline on the target's aim attribute and on correctness (when the judge
    scores `correct`), in points (mean ± std of the per-seed differences) and relative (%), with compute ratios
    (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for e in result.gains:
        a = e[e["aim"]]
        row = {
            "reward model": e["reward_model"], "target": e["target"], "over": e["baseline"], "aim": e["aim"],
            "aim: guided": round(a["guided"], 3), "aim: baseline": round(a["baseline"], 3),
            "aim gain (pts)": f"{a['gain_points']['mean']:+.1f} ± {a['gain_points']['std']:.1f}",
            "aim gain (%)": f"{a['gain_relative_pct']['mean']:+.1f}"}
        if "correct" in e:
            c = e["correct"]
            row["correct gain (pts)"] = f"{c['gain_points']['mean']:+.1f} ± {c['gain_points']['std']:.1f}"
        row["policy tokens ×"] = round(e["policy_tokens_ratio"], 2)
        if "policy_tokens_processed_ratio" in e:
            row["policy tokens processed ×"] = round(e["policy_tokens_processed_ratio"], 2)
        row["total tokens ×"] = round(e["total_tokens_ratio"], 2)
        row["seconds ×"] = round(e["seconds_ratio"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def write_metrics(p, run, setup: SteeringSetup, result: SteeringResult, labels: dict) -> dict:
    judge = setup.judge(p.judge).judge
    metrics = {"notebook": p.notebook, "params_name": p.params_name, "seed": p.seed, "rm_run": str(setup.rm_run_dir),
               "kind": setup.kind, "judge": {"name": p.judge, "note": getattr(judge, "note", "")},
               "n_prompts": len(setup.prompts), "seeds": setup.seeds, "best_of_n": result.best_of_n,
               "prototype_labels": labels, "prototype_diagnostics": result.diagnostics,
               "cache_check": result.cache_check, "rows": result.rows, "summary": result.summary,
               "gains": result.gains}
    run.write_json("metrics.json", metrics)
    return metrics


def save_figures(run, result: SteeringResult, aims: list[str]) -> dict:
    """The comparison as plotly figures in run/figures/: attribute rates per method (the `aims`, then correctness
    when the judge scores it), the compute each used, and the gains of guided decoding (with a correctness panel
    when the judge scores `correct`)."""
    from . import plots

    figs = {"steering_rates": plots.steering_rates(result.summary, _scored(result, list(aims) + ["correct"])),
            "steering_compute": plots.steering_compute(result.summary)}
    if result.gains:
        figs["steering_gains"] = plots.steering_gains(result.gains)
    for name, fig in figs.items():
        plots.save_figure(fig, run.path("figures", name))
    return figs


def steer(p) -> SteeringResult:
    """Everything notebook 04 does, headless."""
    from .runs import start_run

    run = start_run(p)
    setup = prepare(p, run)
    labels = label_counts(p, setup, label_table(p, setup))
    cache = check_cache(p, setup)
    result = compare_methods(p, run, setup)
    result.cache_check = cache
    write_metrics(p, run, setup, result, labels)
    save_figures(run, result, [t.aim for t in p.targets])
    return result
