"""Drawing samples on demand in one decoding loop (continuous batching), for the methods that decide question by
question whether to draw more samples: early-stopping self-consistency, adaptive consistency and DeepConf's online
mode with its consensus stop.

Drawing in rounds (`sequential_online` with the chunked loop) waits for the slowest sample of every round and runs
the late rounds as small batches, so it pays far more time per FLOP than generating everything at once. Here
(`decode_drawn`) up to `batch_size` rows decode together, token by token from the policy's key/value cache; a row
that finishes leaves the batch by index selection, the schedule (`DrawSchedule`) says which samples its question
draws next, and those join the running batch: their prompts are read in one prefill, their cache is left-padded to
the running cache's length and concatenated to it, and leading columns no row attends to any more are cut, so the
cache is never longer than the longest live row needs. This is how serving engines batch requests that arrive while
others run.

Every sample is decoded with its own noise (`PerSampleGumbel` at its own token index), so it is the sample every
other loop of the kit gives (up to floating-point ties, `responses_match_offline` counts them).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cached_decoding import PolicyStepper
from .decoding import _sync, decode_setup


class DrawSchedule:
    """Which samples are drawn, and when. Per question: its sample indices in draw order (`orders`), how many it
    draws (`counts`), `first` of them at once at the start and then `step` at a time, each batch released once every
    sample drawn before it has finished. `limits` (optional, sample index -> tokens) stops a sample after that many
    response tokens (a DeepConf trace stopped by its confidence); samples without one run to their EOS or the token
    budget.

    With `in_flight` k, once a question's first samples have all finished it keeps k samples running, starting its
    next one whenever one finishes (DeepConf online's traces drawn in parallel); `step` is then unused.

    `start()` returns the first samples of every question; `finished(i)` is called when sample i finishes and
    returns the samples its question draws next (none while others of the question are still running)."""

    def __init__(self, orders: list, counts: list[int], step: int, first: int | None = None,
                 limits: dict[int, int] | None = None, in_flight: int | None = None):
        if step < 1 or (first is not None and first < 1) or (in_flight is not None and in_flight < 1):
            raise ValueError(f"step, first and in_flight must be >= 1, got {step}, {first} and {in_flight}")
        self.orders = [[int(i) for i in o] for o in orders]
        self.counts = [min(int(c), len(o)) for c, o in zip(counts, self.orders)]
        self.step, self.first = step, first if first is not None else step
        self.limits = dict(limits or {})
        self.in_flight = in_flight
        self.question = {i: q for q, o in enumerate(self.orders) for i in o}
        self.drawn = [0] * len(self.orders)
        self.running = [0] * len(self.orders)

    def fresh(self) -> "DrawSchedule":
        """The same schedule with nothing drawn yet (a schedule is used up by one run)."""
        return DrawSchedule(self.orders, self.counts, self.step, self.first, self.limits, self.in_flight)

    @property
    def total(self) -> int:
        """Samples drawn in all."""
        return sum(self.counts)

    def _release(self, q: int, k: int) -> list[int]:
        k = min(k, self.counts[q] - self.drawn[q])
        take = self.orders[q][self.drawn[q]:self.drawn[q] + k]
        self.drawn[q] += k
        self.running[q] += k
        return take

    def start(self) -> list[int]:
        return [i for q in range(len(self.orders)) for i in self._release(q, self.first)]

    def finished(self, i: int) -> list[int]:
        q = self.question[i]
        self.running[q] -= 1
        if self.in_flight is not None and self.drawn[q] > self.first:  # past the first samples: top up
            return self._release(q, self.in_flight - self.running[q])
        if self.running[q] > 0:  # the window (or the first samples) still running
            return []
        return self._release(q, self.step if self.in_flight is None else self.in_flight)


@dataclass
class DrawnGeneration:
    """What `decode_drawn` did: response_ids (sample index -> response token ids, EOS included when generated),
    policy_tokens (response tokens generated), prompt_tokens (prompt tokens read, BOS included, padding not),
    prefills (prompt-reading calls), steps (decoding steps), largest_cache (the most key/value columns held) and
    seconds (wall-clock of the whole call)."""

    response_ids: dict[int, list[int]]
    policy_tokens: int
    prompt_tokens: int
    prefills: int
    steps: int
    largest_cache: int
    seconds: float


def join(a: PolicyStepper, b: PolicyStepper) -> None:
    """Append `b`'s rows to `a`'s batch: both caches and masks left-padded (masked columns) to the longer one."""
    L = max(a.att.shape[1], b.att.shape[1])
    for la, lb in zip(a.cache.layers, b.cache.layers):
        la.keys = torch.cat([_left_pad(la.keys, L, 2), _left_pad(lb.keys, L, 2)], 0)
        la.values = torch.cat([_left_pad(la.values, L, 2), _left_pad(lb.values, L, 2)], 0)
    a.att = torch.cat([_left_pad(a.att, L, 1), _left_pad(b.att, L, 1)], 0)


def trim(a: PolicyStepper) -> None:
    """Cut the leading cache columns no row attends to (left by rows that have left the batch)."""
    live = a.att.any(0).nonzero()
    c = int(live[0]) if len(live) else a.att.shape[1]
    if c > 0:
        for layer in a.cache.layers:
            layer.keys, layer.values = layer.keys[:, :, c:], layer.values[:, :, c:]
        a.att = a.att[:, c:]


def _left_pad(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    extra = length - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim) + [extra, 0]
    return F.pad(x, pad)


@torch.no_grad()
def decode_drawn(
    policy,
    tokenizer,
    prompts: list[str],
    uids: list[int],
    schedule: DrawSchedule,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
    suppress_tokens: list[str] | None = None,
    admit_min: int | None = None,
    desc: str = "drawing",
) -> DrawnGeneration:
    """Generate the samples `schedule` draws (prompts and uids indexed by sample index), up to `batch_size` rows at
    a time in one cached decoding loop (module docstring). Released samples wait until at least `admit_min` rows are
    free (default: an eighth of the batch) or all waiting ones fit, so the prompts are read a batch at a time; a
    question's later samples go ahead of questions not yet started, since the questions that draw the most set the
    run's tail. temperature 0 is greedy."""
    ds = decode_setup(policy, tokenizer, suppress_tokens, seed, temperature)
    device, eos, sampler, bad_t = ds.device, ds.eos, ds.sampler, ds.bad_t
    admit_min = max(1, batch_size // 8) if admit_min is None else admit_min
    resp: dict[int, list[int]] = {}
    rows: list[int] = []
    stepper, logits = None, None
    prompt_tokens = prefills = steps = largest = 0
    queue = deque(schedule.start())
    bar = tqdm(total=schedule.total, desc=desc, leave=False)
    _sync(device)
    t0 = time.perf_counter()
    while queue or rows:
        free = batch_size - len(rows)
        if queue and free > 0 and (not rows or free >= min(admit_min, len(queue))):
            take = [queue.popleft() for _ in range(min(free, len(queue)))]
            enc, ids, att = ds.encode(tokenizer, [prompts[i] for i in take])
            new = PolicyStepper(policy)
            new_logits = new.start(ids, att)
            prompt_tokens, prefills = prompt_tokens + sum(map(len, enc)), prefills + 1
            resp.update({i: [] for i in take})
            if stepper is None:
                stepper, logits = new, new_logits
            else:
                join(stepper, new)
                trim(stepper)
                logits = torch.cat([logits, new_logits], 0)
            rows += take
        scores = logits if bad_t is None else logits.index_fill(1, bad_t, float("-inf"))
        if sampler is not None:
            uid_t = torch.tensor([uids[i] for i in rows], dtype=torch.long, device=device)
            at = torch.tensor([len(resp[i]) for i in rows], dtype=torch.long, device=device)
            scores = sampler.noisy(scores, uid_t, at)
        tok = scores.argmax(-1)
        keep, released = [], []
        for j, (i, k) in enumerate(zip(rows, tok.tolist())):
            resp[i].append(k)
            if k == eos or len(resp[i]) >= min(max_new_tokens, schedule.limits.get(i, max_new_tokens)):
                released += schedule.finished(i)
                bar.update(1)
            else:
                keep.append(j)
        queue.extendleft(reversed(released))
        if len(keep) < len(rows):
            rows = [rows[j] for j in keep]
            if not rows:
                stepper, logits = None, None
                continue
            idx = torch.tensor(keep, dtype=torch.long, device=device)
            stepper.select(idx)
            trim(stepper)
            tok = tok[idx]
        logits = stepper.step(tok)
        steps += 1
        largest = max(largest, stepper.att.shape[1])
    _sync(device)
    seconds = time.perf_counter() - t0
    bar.close()
    return DrawnGeneration(resp, sum(len(r) for r in resp.values()), prompt_tokens, prefills, steps, largest,
                           seconds)
