"""The methods that decide question by question whether to draw more samples, run for real in the generation loop of
section 7 on the test questions, at each rm seed's setting chosen on validation: early-stopping self-consistency,
adaptive consistency and (with the policy's confidences) DeepConf's online mode. Their policy tokens and wall-clock
are measured against generating every sample in the same loop (`sequential_online`).

With `online.loop` ``cached`` the samples are drawn on demand in one continuous batch (`continuous_decoding`): a
question's next samples join the running batch as soon as its previous ones have finished. With ``chunked`` they
are drawn in rounds (ESC: a window per question per round; the others: one), every question still drawing batched
together, one `generate_pruned` call per round: each round waits for its slowest sample, and late rounds are small.

A drawn sample is generated from its own id, so it is the recorded sample (checked token for token:
`responses_match_offline`), and its answer is the recorded one; where each question stops is therefore the
replay's (`consistency.stop_counts`, `deepconf.online_spend`), which decides from the samples drawn so far only.
DeepConf's traces stop where the replay's confidence stop put them: the loop does not recompute confidences, so the
measured seconds leave out the top-k log-probabilities (a softmax and a top-k over the vocabulary per token).
"""

from __future__ import annotations

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import evaluation
from ..device import resolve_device
from ..params import FilteringParams
from ..toyworld import MARK_CHARS
from .consistency import orders_of, stop_counts
from .continuous_decoding import DrawSchedule, decode_drawn
from .decoding import generate_pruned
from .deepconf import online_spend
from .frontier import SUMMARY_METRICS, FrontierResult
from .frontier_inputs import FrontierInputs
from .samples import SampleSet, ends_with_eos
from .setup import RMSetup

RULES = {"esc": "esc", "adaptive_consistency": "adaptive"}
"""frontier method -> `consistency.stop_counts` rule"""


def draw_rounds(counts: list[int], orders: list[np.ndarray], step: int) -> list[list[int]]:
    """The samples generated in each round: every question still short of its count draws its next `step` samples
    (fewer when fewer remain to its count). counts: per question the samples it draws; orders: per question the
    sample indices in draw order. Returns the sample indices of each round."""
    drawn = [0] * len(counts)
    rounds = []
    while any(d < c for d, c in zip(drawn, counts)):
        take = []
        for q, (d, c) in enumerate(zip(drawn, counts)):
            if d < c:
                k = min(step, c - d)
                take += [int(i) for i in orders[q][d:d + k]]
                drawn[q] = d + k
        rounds.append(take)
    return rounds


def schedules(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet], frontier: FrontierResult,
              inputs: FrontierInputs | None = None) -> dict[tuple, tuple[str, DrawSchedule]]:
    """{(method, rm_seed): (setting, DrawSchedule on the test samples)} for the reference ``none`` (every sample at
    once) and every chosen operating point of a sequential method; DeepConf's only when `inputs` has confidences
    (its traces stopped by their confidence get a token limit)."""
    test = samples["test"]
    every = [np.flatnonzero(test.question == q) for q in range(test.n_questions)]
    out = {("none", None): ("all samples", DrawSchedule(every, [len(o) for o in every], p.samples_per_question))}
    for r in frontier.chosen:
        m = r["method"]
        if m not in RULES and not (m == "deepconf_online" and inputs is not None and inputs.confidences):
            continue
        v = r["setting_value"]
        orders = orders_of(samples, p.seed, setup.rm_seeds.index(r["rm_seed"]))["test"]
        if m in RULES:
            sched = DrawSchedule(orders, stop_counts(test, orders, RULES[m], v), int(v) if m == "esc" else 1)
        else:
            f = p.frontier
            spend = online_spend(test, inputs.confidences["test"], orders, v[0], f.warmup_traces, f.window,
                                 consensus=v[1], in_flight=f.deepconf_in_flight)
            cut = np.flatnonzero(spend.started & (spend.generated < test.length))  # stopped by confidence
            limits = {int(i): int(spend.generated[i]) for i in cut}
            sched = DrawSchedule(orders, [int(spend.started[o].sum()) for o in orders], 1, first=f.warmup_traces,
                                 limits=limits, in_flight=f.deepconf_in_flight)
        out[(m, r["rm_seed"])] = (r["setting"], sched)
    return out


def sequential_online(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet], frontier: FrontierResult,
                      inputs: FrontierInputs | None = None) -> list[dict]:
    """The sequential methods at their chosen settings (`schedules`), each run `online.repeats` times interleaved
    with the reference ``none`` in the loop `online.loop` names (module docstring), with `online.batch_size` rows
    (and `online.chunk_size` tokens per call in the chunked loop); the fastest repeat is reported. Rows: method,
    rm_seed, setting, loop, calls (prefills, or rounds), steps (decoding steps of the cached loop: a method that
    saves tokens but not steps saves little time; None for rounds), policy_tokens, seconds, seconds_all,
    share_tokens_saved and share_seconds_saved against the reference, responses_match_offline."""
    test, o = samples["test"], p.online
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(resolve_device(p.device))
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    prompts, uids = [r.prompt for r in test.records], [int(u) for u in test.uids]
    expected = [tokenizer(r.response, add_special_tokens=False)["input_ids"]
                + ([tokenizer.eos_token_id] if ends_with_eos(r) else []) for r in test.records]
    common = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=p.seed, batch_size=o.batch_size,
                  suppress_tokens=list(MARK_CHARS))
    jobs = schedules(p, setup, samples, frontier, inputs if o.loop == "cached" else None)  # rounds cannot cut traces
    seconds: dict[tuple, list[float]] = {j: [] for j in jobs}
    tokens, match, calls, steps = {}, {}, {}, {}
    for _ in range(o.repeats):
        for job, (_, template) in jobs.items():
            sched = template.fresh()
            if o.loop == "cached":
                gen = decode_drawn(policy, tokenizer, prompts, uids, sched, desc=f"online {job[0]}", **common)
                got, total, n_tok, n_calls = gen.response_ids, gen.seconds, gen.policy_tokens, gen.prefills
                steps[job] = gen.steps
            else:
                got, total, n_tok, rounds = {}, 0.0, 0, draw_rounds(sched.counts, sched.orders, sched.step)
                for take in rounds:
                    g = generate_pruned(policy, tokenizer, [prompts[i] for i in take], [uids[i] for i in take],
                                        skip_tokens=p.skip_tokens, chunk_size=o.chunk_size, desc=f"online {job[0]}",
                                        **common)
                    got.update(zip(take, g.response_ids))
                    total, n_tok = total + g.seconds, n_tok + g.policy_tokens
                n_calls = len(rounds)
            seconds[job].append(total)
            tokens[job], calls[job] = n_tok, n_calls
            match[job] = float(np.mean([ids == expected[i][:sched.limits.get(i, len(expected[i]))]
                                        for i, ids in got.items()]))
    ref_s, ref_tok = min(seconds[("none", None)]), tokens[("none", None)]
    return [{"method": m, "rm_seed": seed, "setting": setting, "loop": o.loop, "calls": calls[(m, seed)],
             "steps": steps.get((m, seed)),
             "policy_tokens": tokens[(m, seed)], "seconds": min(seconds[(m, seed)]), "seconds_all": seconds[(m, seed)],
             "share_tokens_saved": 1 - tokens[(m, seed)] / ref_tok,
             "share_seconds_saved": 1 - min(seconds[(m, seed)]) / ref_s, "responses_match_offline": match[(m, seed)]}
            for (m, seed), (setting, _) in jobs.items()]


def attach_online(result: FrontierResult, rows: list[dict]) -> FrontierResult:
    """`result` with the seconds of `rows` (from `sequential_online`) as `seconds_online` of the matching chosen
    rows (method, rm seed), and the share of seconds they saved against their own loop's reference as
    `share_seconds_saved`, their mode `online`, and its summary recomputed; the rows are kept in `online`."""
    by = {(r["method"], r["rm_seed"]): r for r in rows}
    for r in result.chosen:
        if (r["method"], r["rm_seed"]) in by:
            r["seconds_online"] = by[(r["method"], r["rm_seed"])]["seconds"]
            r["share_seconds_saved"] = by[(r["method"], r["rm_seed"])]["share_seconds_saved"]  # its own loop's
            r["mode"] = "online"
    result.summary = evaluation.summarise_over_seeds(result.chosen, ["method"], SUMMARY_METRICS)
    result.online = rows
    return result
