"""The data of notebook 01 before any reward model: the toy world (a policy trained here, its labelled samples and
preference pairs) or real data sets read through `gcrm_kit.real_data`, screened to what the reward models can be
trained and scored on, and saved into the run folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import real_data
from ..bounds import WorldBounds
from ..data import GenerationRecord, PreferencePair, load_jsonl, save_jsonl
from ..params import RMTrainingParams, to_dict
from ..runs import Run, cached
from ..toyworld.policy import choose_policy
from ..toyworld.sampling import cached_samples
from .accelerator import release_accelerator_memory
from .pairs import build_pairs, split_heldout
from .screening import (ScreenedPairs, count_skipped, describe_skips, screen_pairs, screen_records,
                        screening_tokenizer)

log = logging.getLogger(__name__)


@dataclass
class RMData:
    """What reward models are trained and evaluated on, with the model they start from: the toy world's policy
    and samples (`build_toy_world`) or real data sets and a backbone (`build_real_world`)."""

    policy_dir: Path
    """the model reward models start from: the toy world's policy, or the real backbone"""
    eval_records: dict[str, list[GenerationRecord]]
    """per evaluation split (or set): labelled responses scored for AUROC"""
    train_pairs: list[PreferencePair]
    heldout_pairs: list[PreferencePair]
    pair_stats: dict
    policy_accuracy: dict[str, float] = field(default_factory=dict)
    policy_attempts: list[dict] = field(default_factory=list)
    """toy world: every policy trained, with its verdict check (toyworld.policy.choose_policy)"""
    world_bounds: dict[str, WorldBounds] = field(default_factory=dict)
    """per evaluation split, the facts that bound every verifier (`bounds.world_bounds_of`); empty until measured"""
    screened: dict[str, ScreenedPairs] = field(default_factory=dict, repr=False)
    """"train" and "heldout": the pairs with the encodings `screen_world` made, which training, the prototype and
    the evaluation reuse (`screening.screen_pairs`) instead of encoding them again; empty when not screened here"""


def screen_world(world: RMData, tokenizer, max_length: int, source: dict | None = None) -> RMData:
    """`world` with only the pairs and records the reward models can be trained and scored on (see
    `screen_pairs`, `screen_records`). The counts go to `world.pair_stats["skipped"]`: {"source": rows an adapter
    left out, per data set (`source`), "train"/"heldout": {reason: n}, "eval": {split: {reason: n}}}; the pair
    counts in pair_stats become the kept ones. The policy's accuracy stays that of all its samples."""
    e_train, train, s_train = screen_pairs(tokenizer, world.train_pairs, max_length)
    e_held, held, s_held = screen_pairs(tokenizer, world.heldout_pairs, max_length)
    evals, s_eval = {}, {}
    for split, recs in world.eval_records.items():
        evals[split], _, rep = screen_records(tokenizer, recs, max_length)
        s_eval[split] = dict(rep.skipped)
    skipped = {"source": dict(source or {}), "train": dict(s_train.skipped), "heldout": dict(s_held.skipped),
               "eval": s_eval}
    if not train:
        raise RuntimeError(f"no training pairs are left after leaving out invalid ones: {skipped}")
    stats = {**world.pair_stats, "skipped": skipped}
    if "train_pairs" in stats:
        stats.update(train_pairs=len(train), heldout_pairs=len(held))
    if any(count_skipped(v) for v in (skipped["train"], skipped["heldout"], skipped["eval"], skipped["source"])):
        log.warning("left out of the world: %s", describe_skips(skipped))
    screened = {"train": ScreenedPairs.of(tokenizer, train, e_train, max_length),
                "heldout": ScreenedPairs.of(tokenizer, held, e_held, max_length)}
    return replace(world, train_pairs=train, heldout_pairs=held, eval_records=evals, pair_stats=stats,
                   screened=screened)


def build_world(p: RMTrainingParams, run: Run) -> RMData:
    """The data notebook 01 trains and evaluates on: the toy world (`data.kind: toy`) or real datasets."""
    return build_toy_world(p, run) if p.data.kind == "toy" else build_real_world(p, run)


def build_toy_world(p: RMTrainingParams, run: Run) -> RMData:
    """Train (or reuse) the policy, sample evaluation and pair data, build pairs. Writes policy_accuracy.json and
    pairs files into the run folder."""
    cache = run.cache_root
    choice = choose_policy(p.world, p.policy, p.seed, cache)
    policy_dir = choice.policy_dir
    eval_records = {s: cached_samples(p, cache, policy_dir, s, "eval") for s in p.evaluation.splits}
    pair_records = cached_samples(p, cache, policy_dir, "id", "pairs")
    exclude = {r.prompt for recs in eval_records.values() for r in recs}
    pairs, stats = build_pairs(pair_records, p.seed, exclude)
    if len(pairs) < 2:
        raise RuntimeError(f"only {len(pairs)} preference pairs could be built ({stats}); sample more questions "
                           "(pairs.n_questions) or more solutions per question")
    train, held = split_heldout(pairs, p.pairs.heldout_fraction, p.seed)
    acc = {s: float(np.mean([r.is_correct for r in recs])) for s, recs in eval_records.items()}
    acc["pairs_samples_id"] = float(np.mean([r.is_correct for r in pair_records]))
    stats.update(train_pairs=len(train), heldout_pairs=len(held))
    world = RMData(policy_dir, eval_records, train, held, stats, acc, choice.attempts)
    return save_world(run, screen_world(world, screening_tokenizer(p, policy_dir), p.training.max_length))


def build_real_world(p: RMTrainingParams, run: Run) -> RMData:
    """Real data through the adapters of `gcrm_kit.real_data`: training pairs from `data.train`, held-out pairs from
    `data.test` (or `pairs.heldout_fraction` of the training pairs), and per evaluation set generation records
    with correctness (benchmark problems are answered greedily by the backbone first, cached). Prompts use the
    tokenizer's chat template when it has one (`data.chat_template`). Writes the same files as the toy world."""
    d = p.data
    # the pad token reward models get (model.pad_token): greedy answering pads its batches with it
    tokenizer = screening_tokenizer(p, p.model.backbone)
    raw = real_data.load_adapted(d.train, "pairs")
    source = {"train": _source_skips(raw, d.train.adapter)}
    pairs = real_data.apply_chat_template(raw, tokenizer, d.chat_template)
    if d.test.adapter:
        train = pairs
        raw = real_data.load_adapted(d.test, "pairs")
        source["test"] = _source_skips(raw, d.test.adapter)
        held = real_data.apply_chat_template(raw, tokenizer, d.chat_template)
    else:
        train, held = split_heldout(pairs, p.pairs.heldout_fraction, p.seed)
    eval_records = {}
    for name, spec in d.eval_sets.items():
        kind = real_data.ADAPTERS[spec.adapter].kind if spec.adapter in real_data.ADAPTERS else None
        if kind == "problems":
            key = {"artifact": "benchmark_answers", "version": 1, "model": p.model.backbone,
                   "spec": to_dict(spec), "max_new_tokens": d.max_new_tokens, "chat_template": d.chat_template}

            def build(tmp: Path, spec=spec) -> None:
                problems = real_data.load_adapted(spec, "problems")
                save_jsonl(real_data.answer_problems(problems, p.model.backbone, tokenizer, d.max_new_tokens,
                                                     chat_template=d.chat_template, device=p.device),
                            tmp / "records.jsonl")
                release_accelerator_memory()  # the answering model, on the GPU when there is one

            recs = load_jsonl(cached(run.cache_root, "samples", key, build) / "records.jsonl", GenerationRecord)
        else:
            recs = real_data.apply_chat_template(real_data.load_adapted(spec, "records"), tokenizer, d.chat_template)
        eval_records[name] = recs
    stats = {"train_pairs": len(train), "heldout_pairs": len(held), "source": d.train.source}
    acc = {name: float(np.mean([r.is_correct for r in recs])) for name, recs in eval_records.items()}
    world = RMData(Path(p.model.backbone), eval_records, train, held, stats, acc)
    return save_world(run, screen_world(world, tokenizer, p.training.max_length,
                                        {k: v for k, v in source.items() if v}))


def _source_skips(items: list, adapter: str) -> dict:
    """Rows of a data set its adapter could not use (HH-RLHF: rows not splittable into prompt and responses), as
    {reason: n}. The count is read wherever the adapter left it: `skipped_rows` in the `stats` of the list it
    returned, or in an item's meta (older adapters put it on the first pair), where it is removed so it does not
    travel with that pair into a split's pairs file."""
    n = int((getattr(items, "stats", None) or {}).get("skipped_rows", 0) or 0)
    n += sum(int(it.meta.pop("skipped_rows", 0) or 0) for it in items)
    return {f"rows the {adapter} adapter could not use": n} if n else {}


def save_world(run: Run, world: RMData) -> RMData:
    """Write what a world is made of into the run folder (policy_accuracy.json, pair_stats.json, data/train_pairs,
    heldout_pairs and eval_<split>.jsonl: what later notebooks score, kept with the run that scored it).
    Returns `world`."""
    run.write_json("policy_accuracy.json", world.policy_accuracy)
    if world.policy_attempts:
        run.write_json("policy_attempts.json", world.policy_attempts)
    run.write_json("pair_stats.json", world.pair_stats)
    save_jsonl(world.train_pairs, run.path("data", "train_pairs.jsonl"))
    save_jsonl(world.heldout_pairs, run.path("data", "heldout_pairs.jsonl"))
    for split, recs in world.eval_records.items():
        save_jsonl(recs, run.path("data", f"eval_{split}.jsonl"))
    return world
