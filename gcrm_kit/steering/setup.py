"""What the comparison builds on (`SteeringSetup`) and how a run gets it (`prepare`): the notebook-01 run, its
policy, the reward models asked for (by name or by role, through `rm_runs.select_reward_models`), the evaluation
prompts and the labelled examples the prototypes are built from.

Toy world: the prompts are new questions of `SteeringParams.split`, the labelled examples both sides of the RM run's
training pairs, labelled by the judge. Real data (a real-data notebook-01 run, `SteeringParams.data`; the paper's
setting is Llama-3-8B-Instruct with its HH-RLHF reward models): the evaluation prompts come from a data set
(HelpSteer's), rendered with the policy's chat template when the reward models were trained on it; the labelled
examples are responses *rated* high or low on an attribute (HelpSteer's ratings through
`real_data.helpsteer_records`: the ratings are the labels, no judge is asked); the prototype diagnostics read
held-out rated responses; nothing toy-specific runs (no suppressed marks, no exact process value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import real_data
from ..data import PreferencePair, load_jsonl
from ..device import resolve_device
from ..models import load_reward_model
from ..params import to_dict
from ..rm_runs import find_reward_model, objective_of, policy_dir_of, resolve_rm_run, select_reward_models
from ..toyworld import MARK_CHARS, SPLITS, sample_problem
from .judges import CachedJudge, get_judge, in_set, rating_labels


@dataclass
class SteeringSetup:
    """What the comparison builds on: the RM run, its policy, the reward models (name -> [(seed, folder)], in the
    order the params ask for them), the evaluation prompts and the labelled (prompt, response) examples prototypes
    are built from. `judges` holds the run's judges (name -> `CachedJudge`), so every example is judged once per
    run whatever asks for it."""

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
    aliases: dict[str, str] = field(default_factory=dict)
    """each entry of `SteeringParams.reward_models` (a name or a role) -> the name of the model it selected"""
    objectives: dict[str, dict] = field(default_factory=dict)
    """reward model name -> what it was trained to do (`rm_runs.objective_of`: role, contrastive and GRM weights)"""

    def judge(self, name: str) -> CachedJudge:
        """The judge registered as `name`, made once for this setup and wrapped in a `CachedJudge`."""
        if name not in self.judges:
            self.judges[name] = CachedJudge(get_judge(name, self), name)
        return self.judges[name]

    @property
    def reward_models(self) -> list[str]:
        """The names of the reward models that guide decoding, in the order the params ask for them."""
        return list(self.model_dirs)

    def reward_model_name(self, wanted: str) -> str:
        """The name of the model that `wanted` (an entry of `SteeringParams.reward_models`: a name or a role)
        selected."""
        return self.aliases.get(wanted, wanted)

    @property
    def suppress_tokens(self) -> list[str]:
        """Tokens the policy never generates: the toy world's self-correction marks (its base corpus has them,
        sampled solutions must not); none for real data."""
        if self.kind != "toy":
            return []
        return list(MARK_CHARS)

    @property
    def seeds(self) -> list[int]:
        """The rm seeds used (the same for every reward model)."""
        return [s for s, _ in next(iter(self.model_dirs.values()))]

    def load_policy(self):
        """(policy, tokenizer). Real data: the checkpoint's own dtype, and the reward models' tokenizer (the
        policy's, with the pad token notebook 01 gave it: Llama 3 has none)."""
        if self.kind == "toy":
            model = AutoModelForCausalLM.from_pretrained(self.policy_dir).to(self.device).eval()
            return model, AutoTokenizer.from_pretrained(self.policy_dir)
        model = AutoModelForCausalLM.from_pretrained(self.policy_dir, dtype="auto").to(self.device).eval()
        first = next(iter(self.model_dirs.values()))[0][1]
        return model, AutoTokenizer.from_pretrained(first)

    def load_reward_model(self, name: str, seed: int):
        """(reward model on the setup's device, its tokenizer) of model `name` and rm seed `seed`."""
        d = dict(self.model_dirs[name])[seed]
        model, tok = load_reward_model(d)
        return model.to(self.device), tok


def prepare(p, run) -> SteeringSetup:
    """Find (or train) the RM run, select the reward models (`p.reward_models`: names or roles) and seeds asked
    for, draw the evaluation prompts (questions of `p.split` not among the RM run's pairs) and collect the labelled
    examples. Writes prompts.json and setup.json into the run folder."""
    rm_dir = resolve_rm_run(p.rm_run, p.rm_params, p.output_root)
    sel = select_reward_models(rm_dir, p.reward_models, p.rm_seeds)
    rp, seeds, chosen = sel.params, sel.seeds, sel.dirs
    model_dirs = {n: list(zip(seeds, ds)) for n, ds in chosen.items()}
    specs = {spec.name: spec for spec in rp.reward_models}
    selected = {"aliases": {w: find_reward_model(rp, w, rm_dir) for w in p.reward_models},
                "objectives": {n: objective_of(specs[n]) for n in model_dirs}}
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
        return _prepare_real(p, run, rm_dir, rp, seeds, model_dirs, Path(policies.pop()), selected)
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
                          params=p, **selected)
    run.write_json("prompts.json", prompts)
    run.write_json("setup.json", {"rm_run": str(rm_dir), "policy_dir": str(setup.policy_dir),
                                  "reward_models": {n: [str(d) for _, d in ds] for n, ds in model_dirs.items()},
                                  "seeds": seeds, "n_prompts": len(prompts), "n_labelled": len(labelled),
                                  "device": str(setup.device)})
    return setup


def _prepare_real(p, run, rm_dir: Path, rp, seeds: list[int], model_dirs: dict, policy_dir: Path,
                  selected: dict) -> SteeringSetup:
    """`prepare` for a real-data notebook-01 run: evaluation prompts from `p.data.prompts` (distinct prompts, drawn
    with `p.seed`, none among the labelled responses' prompts, rendered with the policy's chat template as notebook
    01 rendered its prompts), the rated responses of `p.data.labelled` that fall in some prototype's set (the first
    `p.prototype_examples`), labelled by their ratings, and rated held-out responses of `p.data.prompts` (when its
    adapter gives ratings) for the diagnostics. `selected`: the setup's `aliases` and `objectives`."""
    d = p.data
    mode = rp.data.chat_template
    tok = AutoTokenizer.from_pretrained(next(iter(model_dirs.values()))[0][1])  # the policy's, pad token set
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
                          labelled_source=source, **selected)
    run.write_json("prompts.json", prompts)
    run.write_json("setup.json", {"rm_run": str(rm_dir), "policy_dir": str(policy_dir), "kind": "real",
                                  "reward_models": {n: [str(x) for _, x in ds] for n, ds in model_dirs.items()},
                                  "seeds": seeds, "n_prompts": len(prompts), "n_labelled": len(labelled),
                                  "n_heldout": len(heldout), "prompts_source": to_dict(d.prompts),
                                  "labelled_source": source, "prompts_too_long": too_long,
                                  "chat_template": mode if getattr(tok, "chat_template", None) else "none",
                                  "device": str(setup.device)})
    return setup
