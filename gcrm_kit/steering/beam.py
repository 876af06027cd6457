"""Step-level beam search steered by a reward model's goal states (PAPER.md section 4), following self-evaluation
guided beam search (Xie et al., NeurIPS 2023) as the paper uses it. At every step, for each live beam:

1. the policy samples `n_candidates` continuations, each stopped at the end of one step (the step delimiter, or
   the EOS that ends the solution), with its length-normalised probability p = exp(mean log-prob of its tokens);
   while a question has fewer than beam_size / n_candidates live beams (at the first step: one), each samples
   2 * beam_size / (live beams) instead, as the released decoder does, so the search starts from enough choices;
2. the reward model reads prompt + prefix + candidate **in context** (`context.ContextScorer`) and the candidate's
   goal term G (`goal.GoalTerm`) is computed from its final state at the candidate's last token (or the mean over
   the candidate's tokens);
3. the step score is s = c^r * p^(1 - r) with c = (1 + G) / 2 (`goal.step_log_score`);
4. a beam's score is the geometric mean of its step scores (or, reading G as the value of the whole prefix,
   c_latest^r times the geometric mean of its p^(1-r)); among the finished beams kept so far and every new
   candidate of a question, `beam_size` survive: the best ones (beam temperature 0), or a draw without
   replacement with probabilities proportional to score^(1/temperature).

A question is done when every surviving beam has finished; its answer is the best finished beam. The search's
settings are `params.BeamParams` (`SteeringParams.beam`).

The paper's released decoder scores each candidate step on its own, without the prompt or the earlier steps.
Here the reward model always sees the whole context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..params import BeamParams
from .context import ContextScorer
from .goal import GoalTerm, goal_ratio, step_log_score
from .steps import Step, prefix_cache_of, prefix_cache_supported, sample_steps, step_stop_ids


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
def guided_decode(policy, tokenizer, prompts: list[str], settings: BeamParams, scorer: ContextScorer | None = None,
                  goal: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
                  suppress_tokens: list[str] | None = None, trace_prompts: tuple[int, ...] = (),
                  trace: list | None = None, max_length: int | None = None, policy_cache: bool = True
                  ) -> list[Decoded]:
    """Step-level beam search over all `prompts` at once (live beams of every prompt share each forward pass).

    With `scorer` and `goal`, each candidate is scored in context by the reward model (`scorer` gives its pooled
    states, `goal` maps them to goal terms, e.g. a `GoalTerm`) and the goal term weighs in by the confidence
    ratio; without them (or with confidence ratio -inf) the search uses the policy's probability alone. `trace`
    (a list), when given, receives one dict per step and per prompt in `trace_prompts` with every candidate's
    text, log-probability, goal term and score, and which survived.
    `max_length` caps prefix + step (default: the policy's max_position_embeddings). `policy_cache` keeps the
    policy's key/value cache of every live beam's prefix across steps (`steps.PrefixCache`), so each step runs only
    the new tokens through the policy; False re-encodes every prefix at every step (the reference the cache is
    tested against: same beams, scores equal up to float round-off; also what a policy whose cache is not a plain
    `DynamicCache`, e.g. one with sliding-window layers, gets). `policy_tokens_processed` counts the prefix
    tokens an uncached step encodes either way, so the compute accounting does not depend on this switch.
    Returns one `Decoded` per prompt, in order."""
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
    policy_cache = policy_cache and prefix_cache_supported(policy.config)
    # the prompts are encoded once here; every candidate of a prompt then starts from this cache
    prefix_cache = prefix_cache_of(policy, prompt_ids, tokenizer.pad_token_id) if policy_cache else None
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
                             stop_ids=stops, prefix_cache=prefix_cache, return_cache=policy_cache)
        steps, step_cache = steps if policy_cache else (steps, None)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        # one candidate per distinct (prefix, step): duplicates would fill the beam with copies
        seen, cands, cand_rows = set(), [], []
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
                    cand_rows.append(offsets[j] + k)
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
        if step_cache is not None:
            prefix_cache = step_cache.take([int(cand_rows[c]) for c in keep_rows],
                                           [len(cands[c][1].ids) for c in keep_rows])
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


def decode_in_batches(policy, tokenizer, prompts: list[str], settings: BeamParams, batch_size: int,
                      scorer: ContextScorer | None = None, goal: GoalTerm | None = None, seed: int = 0,
                      suppress_tokens: list[str] | None = None, desc: str = "guided decoding") -> list[Decoded]:
    """`guided_decode` over `prompts` in batches of `batch_size` prompts, with a progress bar."""
    out = []
    for k, s in enumerate(tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False)):
        out += guided_decode(policy, tokenizer, prompts[s:s + batch_size], settings, scorer, goal, seed=seed + k,
                             suppress_tokens=suppress_tokens)
    return out
