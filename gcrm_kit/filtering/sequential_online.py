"""Early-stopping self-consistency and adaptive consistency run for real in the generation loop of section 7, on the
test questions: samples are drawn in rounds (ESC: a window per question per round; adaptive consistency: one),
all questions that are still drawing batched together, until each question's rule stops it; the policy tokens and
the wall-clock are measured against generating every sample in the same loop (`sequential_online`).

A drawn sample is generated from its own id, so it is the recorded sample (checked token for token:
`responses_match_offline`), and its answer is the recorded one; where each question stops is therefore
`consistency.stop_counts` on the recorded answers, which decide from the samples drawn so far only. What the real
run adds is the cost of drawing in rounds: small batches late on, one `generate` call per round.
"""

from __future__ import annotations

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import evaluation
from ..device import resolve_device
from ..params import FilteringParams
from ..toyworld import MARK_CHARS
from .consistency import orders_of, stop_counts
from .decoding import generate_pruned
from .frontier import SUMMARY_METRICS, FrontierResult
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


def sequential_online(p: FilteringParams, setup: RMSetup, samples: dict[str, SampleSet], frontier: FrontierResult
                      ) -> list[dict]:
    """ESC and adaptive consistency at each rm seed's setting chosen on validation (`frontier.chosen`), run in
    rounds on the test questions with the online loop's settings (`online.chunk_size`, `online.batch_size`), each
    `online.repeats` times interleaved with the reference ``none`` (every sample in one pass of the same loop); the
    fastest repeat is reported. Rows: method, rm_seed, setting, rounds, policy_tokens, seconds, seconds_all,
    share_tokens_saved and share_seconds_saved against the reference, responses_match_offline."""
    test, o = samples["test"], p.online
    policy = AutoModelForCausalLM.from_pretrained(setup.policy_dir).to(resolve_device(p.device))
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    prompts, uids = [r.prompt for r in test.records], [int(u) for u in test.uids]
    expected = [tokenizer(r.response, add_special_tokens=False)["input_ids"]
                + ([tokenizer.eos_token_id] if ends_with_eos(r) else []) for r in test.records]
    common = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=p.seed, batch_size=o.batch_size,
                  suppress_tokens=list(MARK_CHARS), skip_tokens=p.skip_tokens, chunk_size=o.chunk_size)
    jobs = {("none", None): ("all samples", [list(range(len(uids)))])}
    for r in frontier.chosen:
        if r["method"] in RULES:
            si = setup.rm_seeds.index(r["rm_seed"])
            orders = orders_of(samples, p.seed, si)["test"]
            counts = stop_counts(test, orders, RULES[r["method"]], r["setting_value"])
            step = int(r["setting_value"]) if r["method"] == "esc" else 1
            jobs[(r["method"], r["rm_seed"])] = (r["setting"], draw_rounds(counts, orders, step))
    seconds = {j: [] for j in jobs}
    tokens, match = {}, {}
    for _ in range(o.repeats):
        for job, (_, rounds) in jobs.items():
            total, n_tok, same = 0.0, 0, []
            for take in rounds:
                gen = generate_pruned(policy, tokenizer, [prompts[i] for i in take], [uids[i] for i in take],
                                      desc=f"online {job[0]}", **common)
                total += gen.seconds
                n_tok += gen.policy_tokens
                same += [ids == expected[i] for ids, i in zip(gen.response_ids, take)]
            seconds[job].append(total)
            tokens[job], match[job] = n_tok, float(np.mean(same))
    ref_s, ref_tok = min(seconds[("none", None)]), tokens[("none", None)]
    return [{"method": m, "rm_seed": seed, "setting": setting, "rounds": len(rounds),
             "policy_tokens": tokens[(m, seed)], "seconds": min(seconds[(m, seed)]), "seconds_all": seconds[(m, seed)],
             "share_tokens_saved": 1 - tokens[(m, seed)] / ref_tok,
             "share_seconds_saved": 1 - min(seconds[(m, seed)]) / ref_s, "responses_match_offline": match[(m, seed)]}
            for (m, seed), (setting, rounds) in jobs.items()]


def attach_online(result: FrontierResult, rows: list[dict]) -> FrontierResult:
    """`result` with the seconds of `rows` (from `sequential_online`) as `seconds_online` of the matching chosen
    rows (method, rm seed), their mode `online`, and its summary recomputed; the rows are kept in `online`."""
    by = {(r["method"], r["rm_seed"]): r for r in rows}
    for r in result.chosen:
        if (r["method"], r["rm_seed"]) in by:
            r["seconds_online"] = by[(r["method"], r["rm_seed"])]["seconds"]
            r["mode"] = "online"
    result.summary = evaluation.summarise_over_seeds(result.chosen, ["method"], SUMMARY_METRICS)
    result.online = rows
    return result
