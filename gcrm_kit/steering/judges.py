"""Judges: what scores the attributes of a response, and the labels of rated responses.

Attributes are scored by a judge: the toy world's exact scorers by default (`exact`), the reward-model proxies of
`proxy_judge` on real data (`rm_proxy`), or any function registered with `register_judge` (an LLM judge, for
instance); none needs a paid service unless one is registered. Each distinct (prompt, response) is judged once per
run (`CachedJudge`, held by the `SteeringSetup`). On real data the labelled examples carry ratings instead
(`rating_labels`), and no judge is asked for them.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from ..real_data import HELPSTEER_ATTRIBUTES, helpsteer_sets
from ..toyworld.attributes import score_attributes


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

    def judge(prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in score_attributes(p, r).items()} for p, r in zip(prompts, responses)]

    return judge


register_judge("exact", exact_toy_judge)


def get_judge(name: str, setup=None) -> Judge:
    """The judge registered as `name`: its factory called with `setup` (a `SteeringSetup`) when it takes one argument,
    else with none."""
    if name not in JUDGES:
        raise KeyError(f"unknown judge {name!r}; registered: {sorted(JUDGES)} (see steering.register_judge)")
    factory = JUDGES[name]
    try:
        takes_setup = len(inspect.signature(factory).parameters) >= 1
    except (TypeError, ValueError):  # a builtin or C callable: called without arguments
        takes_setup = False
    return factory(setup) if takes_setup else factory()


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
    labels: list[dict[str, float | None]] = [{} for _ in records]
    for a in HELPSTEER_ATTRIBUTES:
        sets = helpsteer_sets(records, a, high, low)
        hi, lo = {id(r) for r in sets["high"]}, {id(r) for r in sets["low"]}
        for lab, r in zip(labels, records):
            lab[a] = 1.0 if id(r) in hi else 0.0 if id(r) in lo else None
    return labels

