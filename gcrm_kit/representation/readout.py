"""Reading the reward models: for every model and seed, build the goal prototypes from its training pairs, save
them with provenance, and read per-token values (Q-values towards each prototype, the reward head) of every
analysed solution. The models run on the device of `p.device` (`gcrm_kit.device.resolve_device`); every result
comes back to the CPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..device import resolve_device
from ..models import load_reward_model
from ..params import RepresentationParams
from ..qvalues import (Prototype, TokenValues, list_prototypes, load_prototypes, pooled_states_many,
                       prototype_provenance, token_values)
from ..runs import Run
from .inputs import RepresentationInputs


@dataclass
class Readout:
    """Per reward model name, one entry per seed: the prototypes built for it ({name: Prototype}) and the
    `TokenValues` of every analysed solution (Q-values towards each prototype, head values; the first seed's
    also keep the hidden states, for the 2-D maps). `device`: where the models ran."""

    prototypes: dict[str, list[dict[str, Prototype]]]
    values: dict[str, list[TokenValues]]
    prototype_check: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


def load_on(model_dir: Path, device: torch.device):
    """(reward model on `device`, in eval mode; its tokenizer) of the checkpoint in `model_dir`."""
    model, tok = load_reward_model(model_dir)
    return model.to(device), tok


def read_reward_models(p: RepresentationParams, run: Run, inputs: RepresentationInputs) -> Readout:
    """For every reward model and seed: build the prototypes of `p.prototypes` from the training pairs, save them
    with provenance under `<run>/reward_models/<model>/prototypes/`, load them back by name, and read the
    per-token values of every analysed solution in one forward pass per batch, on `resolve_device(p.device)`.

    `prototype_check` records, per model, the largest difference between the rebuilt `chosen`/`last` prototype
    and the one notebook 01 saved beside the checkpoint (0 up to float rounding: both see one format)."""
    device = resolve_device(p.device)
    prompts = [r.prompt for r in inputs.records]
    responses = [r.response for r in inputs.records]
    pairs = inputs.train_pairs
    protos: dict[str, list] = {}
    values: dict[str, list] = {}
    check: dict[str, float] = {}
    data_file = inputs.rm_run_dir / "data" / "train_pairs.jsonl"
    sides = {side: [x.chosen if side == "chosen" else x.rejected for x in pairs]
             for side in dict.fromkeys(s.responses for s in p.prototypes)}
    for name, dirs in inputs.model_dirs.items():
        for k, d in enumerate(dirs):
            model, tok = load_on(d, device)
            out_dir = run.path("reward_models", d.name)
            for side, side_responses in sides.items():
                specs = [s for s in p.prototypes if s.responses == side]
                # every pooling of one data slice comes from the same forward pass; the states come back on the CPU
                states = pooled_states_many(model, tok, [x.prompt for x in pairs], side_responses,
                                            list(dict.fromkeys(s.pooling for s in specs)), p.batch_size, p.seed)
                for spec in specs:
                    prov = prototype_provenance(model, spec.pooling, len(pairs), p.seed, {
                        "checkpoint": str(d), "data": f"{side} responses of {data_file}", "data_slice": side})
                    proto = Prototype(spec.name, states[spec.pooling].mean(0), prov)
                    proto.save(out_dir)
                    if side == "chosen" and spec.pooling == "last" and "correct" in list_prototypes(d):
                        saved = Prototype.load(d, "correct")
                        if saved.provenance.get("pooling") == "last":
                            check[d.name] = float((saved.vector - proto.vector).abs().max())
            loaded = load_prototypes(out_dir, [s.name for s in p.prototypes])
            protos.setdefault(name, []).append(loaded)
            values.setdefault(name, []).append(token_values(
                model, tok, prompts, responses, loaded, batch_size=p.batch_size, keep_hidden=k == 0,
                desc=f"token values {d.name}"))
            del model  # one model on the device at a time: free this one before the next is loaded
    return Readout(protos, values, check, str(device))


def prototype_table(readout: Readout):
    """One row per (model, seed, prototype) with its provenance (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for name, per_seed in readout.prototypes.items():
        for protos in per_seed:
            for pname, proto in protos.items():
                prov = proto.provenance
                rows.append({"model": Path(prov.get("checkpoint", name)).name, "prototype": pname,
                             "pooling": prov.get("pooling"), "data": prov.get("data_slice"),
                             "count": prov.get("count"), "layer": prov.get("layer"),
                             "norm": float(proto.vector.norm())})
    return pd.DataFrame(rows)
