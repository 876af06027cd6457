"""The labels of the labelled examples prototypes are built from: the judge's scores, judged once per run and
reused by every prototype build, count and overview (toy world), or the examples' own ratings (real data); with
the checks that the labels have every prototype's attribute and that the judge scores every target's aim.
"""

from __future__ import annotations

from .judges import in_set
from .setup import SteeringSetup


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
