"""Goal prototypes for one reward model: the mean final state of the labelled responses that have an attribute
(saved with provenance), the goal terms of the targets built from them, and the diagnostics that say whether each
goal points at its attribute, at the EOS and at the step ends inside a response.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import PreferencePair, encode, load_jsonl, pad_batch
from ..evaluation import auroc
from ..models import reward_forward
from ..qvalues import Prototype, pooled_states, prototype_provenance
from .goal import GoalTerm
from .judges import in_set
from .labels import label_table
from .setup import SteeringSetup
from .steps import step_end_ids


@torch.no_grad()
def build_prototypes(p, setup: SteeringSetup, model, tokenizer, rm_name: str, seed: int, save_dir: Path | None = None,
                     labels: list[dict] | None = None) -> dict:
    """One prototype per `p.prototypes` entry for this reward model: the mean pooled final state over the labelled
    responses whose attribute equals the spec's value. Saved (with provenance) in `save_dir` when given (one
    <name>.pt and <name>.json per prototype). `labels`: the judge's scores of `setup.labelled` (`label_table`;
    taken from the run's judge cache when not given, so the examples are judged once, not once per model).
    Returns name -> qvalues.Prototype."""
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
            proto.save(save_dir, folder="")
        out[spec.name] = proto
    return out


def goal_terms(p, prototypes: dict) -> dict[str, GoalTerm]:
    """One goal term per target of `p.targets` (name -> `GoalTerm`) from `prototypes` (name -> Prototype)."""
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
    if setup.labels is None:
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
