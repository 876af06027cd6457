"""Process reward models (PRMs): one probability per solution step that the step is right, as a standard
`AutoModelForTokenClassification` checkpoint with two labels (0 "wrong", 1 "right"), read on each step's separator
token as TRL's PRMTrainer labels it.

Stepwise data is what TRL calls stepwise supervision: a prompt, the completion as a list of steps, one label per
step (true/false, or a share in [0, 1] for Monte-Carlo soft labels). The steps are joined by the model's step
separator into one response, and the sequence is the kit's single format, BOS + prompt + response + EOS
(`data.encode`), so a PRM reads exactly what the outcome reward models read. Step k's label sits on the token that
holds the last character of the separator after it; the last step has no separator after it, so its label sits on
the EOS (for the toy world, "7+3=0;0*2=0;A:0": the two ";" and the EOS). The separator is saved in the checkpoint's
config (`step_separator`), so a plain `transformers` load knows where to read.

- `StepwiseExample`, `step_positions`, `encode_stepwise`, `StepwiseCollator`: the data;
- `prm_from_policy`, `load_prm`, `merge_prm_adapter`: the model;
- `ProcessTrainer`: `transformers.Trainer` with the per-step cross-entropy (soft targets allowed);
- `prm_step_scores(model, tokenizer, prompts, responses)`: per-step probabilities of any (prompt, solution);
  `prm_token_values`: P(right) after every response token, for the per-token analyses of notebook 02.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, Trainer
from transformers.utils import logging as hf_logging

from .data import Encoded, check_tokenizer, encode, pad_batch
from .io import normal_permissions
from .models import _load_kwargs, add_scoring_template, bnb_config, prepare_for_training, set_pad_token
from .qvalues import TokenValues, char_to_token
from .training import OpenPermissions, window_means

#: the class indices of the two labels: the probability of a step being right is softmax(logits)[..., RIGHT]
WRONG, RIGHT = 0, 1
LABELS = {WRONG: "wrong", RIGHT: "right"}
IGNORE = -100.0
"""the target of every token that carries no step label"""


@dataclass
class StepwiseExample:
    """One solution labelled step by step: `labels[k]` is 1.0 (or True) when step k is right, 0.0 when wrong, or
    the share of Monte-Carlo rollouts from it that reach the right answer."""

    prompt: str
    steps: list[str]
    labels: list[float]


def check_example(ex: StepwiseExample, separator: str, where: str = "example") -> None:
    """Raise ValueError naming `where` and the key when `ex` cannot be labelled on separators: no steps, an empty
    step, a step holding the separator (the response would split into other steps), labels not one per step, or a
    label that is not a bool or a number in [0, 1]."""
    if not ex.steps:
        raise ValueError(f"{where}: key 'completions' is an empty list; a solution needs at least one step")
    if len(ex.labels) != len(ex.steps):
        raise ValueError(f"{where}: key 'labels' has {len(ex.labels)} labels for {len(ex.steps)} steps; give one "
                         "label per step")
    for k, s in enumerate(ex.steps):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"{where}: key 'completions[{k}]' is an empty step ({s!r}); every step needs text")
        if separator in s:
            raise ValueError(f"{where}: key 'completions[{k}]' holds the step separator {separator!r}, so the "
                             "joined solution would not split back into these steps")
    for k, y in enumerate(ex.labels):
        ok = isinstance(y, (bool, np.bool_)) or (isinstance(y, (int, float)) and math.isfinite(y) and 0 <= y <= 1)
        if not ok:
            raise ValueError(f"{where}: key 'labels[{k}]' must be true/false or a share in [0, 1], got {y!r}")


def step_positions(tokenizer, prompt: str, steps: Sequence[str], separator: str) -> tuple[Encoded, list[int]]:
    """The kit's encoding of (prompt, separator.join(steps)) and, per step, the index in its input_ids of the token
    that carries the step's label: the token holding the last character of the separator after the step (found
    through the tokenizer's offsets of the response, tokenised on its own as `data.encode` does), the EOS for the
    last step. Raises ValueError when two steps land on one token (a tokenizer that merges a whole step into its
    separator)."""
    response = separator.join(steps)
    enc = encode(tokenizer, prompt, response)
    offsets = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    pos, end = [], -1
    for s in steps[:-1]:
        end += len(s) + len(separator)
        j = char_to_token(offsets, end)
        pos.append(enc.response_start + (j if j is not None else len(offsets) - 1))
    pos.append(len(enc.input_ids) - 1)
    if any(b <= a for a, b in zip(pos, pos[1:])):
        raise ValueError(f"steps {list(steps)!r:.80}: two steps end on the same token; the tokenizer merges a "
                         "separator with a whole step")
    return enc, pos


def encode_stepwise(tokenizer, ex: StepwiseExample, separator: str) -> dict:
    """One example for training: {"encoded": Encoded, "positions": [per step], "targets": [per step, float]}."""
    enc, pos = step_positions(tokenizer, ex.prompt, ex.steps, separator)
    return {"encoded": enc, "positions": pos, "targets": [float(y) for y in ex.labels]}


def encode_examples(tokenizer, examples: Sequence[StepwiseExample], separator: str, max_length: int
                    ) -> tuple[list[dict], dict]:
    """Encode examples for training; one longer than `max_length` tokens is left out and counted (cutting it would
    drop the EOS, where the last step's label sits). Returns (encoded, each with its example's "index", and
    {"kept", "skipped": {reason: n}}). Raises ValueError naming the example for one `check_example` refuses."""
    check_tokenizer(tokenizer)
    out, skipped = [], {}
    for i, ex in enumerate(examples):
        check_example(ex, separator, f"example {i}")
        e = {**encode_stepwise(tokenizer, ex, separator), "index": i}
        if len(e["encoded"].input_ids) > max_length:
            key = f"longer than max_length={max_length}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        out.append(e)
    return out, {"kept": len(out), "skipped": skipped}


class StepwiseCollator:
    """Batches of encoded examples: `data.pad_batch`'s tensors (right padding) plus step_targets (B, T) float, the
    step label at each labelled token and IGNORE elsewhere."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        b = pad_batch([it["encoded"] for it in items], self.pad_id, "right")
        targets = torch.full(b["input_ids"].shape, IGNORE)
        for i, it in enumerate(items):
            targets[i, it["positions"]] = torch.tensor(it["targets"])
        b["step_targets"] = targets
        return b


def step_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the two-label logits (B, T, 2) against per-token targets (B, T): at labelled tokens
    (target >= 0) -t log p(right) - (1 - t) log p(wrong), averaged over them; hard labels are t in {0, 1}.
    Returns (loss, accuracy of p(right) > 0.5 against t >= 0.5)."""
    mask = targets >= 0
    if not mask.any():
        raise ValueError("a batch with no labelled step")
    logp = torch.log_softmax(logits[mask].float(), dim=-1)
    t = targets[mask].to(logp.dtype)
    loss = -(t * logp[:, RIGHT] + (1 - t) * logp[:, WRONG]).mean()
    acc = ((logp[:, RIGHT] > math.log(0.5)) == (t >= 0.5)).float().mean()
    return loss, acc.detach()


class ProcessTrainer(Trainer):
    """A Trainer whose loss is `step_loss` on `StepwiseCollator` batches; logs `step_accuracy` beside `loss` (the
    mean over every process's batches since the last log, `training.window_means`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(OpenPermissions())
        self._acc: list[float] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    position_ids=inputs["position_ids"], use_cache=False)
        loss, acc = step_loss(out.logits, inputs["step_targets"].to(out.logits.device))
        if model.training:
            self._acc.append(float(acc))
        return (loss, {"logits": out.logits}) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.is_world_process_zero():
            normal_permissions(output_dir or self.args.output_dir)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # every process logs at the same steps, so the sum over processes can be taken here
            reduce = (lambda t: self.accelerator.reduce(t, "sum")) if self.args.world_size > 1 else None
            logs.update(window_means({"step_accuracy": self._acc}, reduce, self.args.device))
            self._acc.clear()
        super().log(logs, *args, **kwargs)


# ------------------------------------------------------------------------------------------------ the model


def _prm_config(base_dir: str | Path, tokenizer, separator: str):
    """The base checkpoint's config made a PRM's: two labels, the pad id, no dropout before the head, the
    separator. (transformers 5 hands keyword arguments the config does not know to the model, so the config is
    built first.)"""
    config = AutoConfig.from_pretrained(base_dir)
    config.num_labels = 2
    config.id2label, config.label2id = dict(LABELS), {v: k for k, v in LABELS.items()}
    config.pad_token_id = tokenizer.pad_token_id
    config.classifier_dropout = 0.0
    config.step_separator = separator
    return config


def prm_from_policy(policy_dir: str | Path, separator: str, seed: int | None = None, model_params=None, lora=None,
                    quant=None):
    """Load a policy checkpoint as a PRM: same backbone, a new two-label token head (seeded with `seed`), no
    dropout on it (the outcome reward models have none), `step_separator` in its config. `model_params`, `quant`
    and `lora` as for `models.reward_model_from_policy` (peft's TOKEN_CLS task, the head trained in full).
    Returns (model, tokenizer), the tokenizer adding BOS and EOS as the kit does."""
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    if model_params is not None:
        set_pad_token(tokenizer, model_params.pad_token)
    check_tokenizer(tokenizer)
    add_scoring_template(tokenizer)
    if seed is not None:
        torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the policy's LM head unused, the token head new: what a PRM from a policy is
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            policy_dir, config=_prm_config(policy_dir, tokenizer, separator), **_load_kwargs(model_params, quant))
    finally:
        hf_logging.set_verbosity(verbosity)
    return prepare_for_training(model, model_params, quant, lora, "TOKEN_CLS"), tokenizer


def merge_prm_adapter(adapter_dir: str | Path, out_dir: str | Path, base_dir: str | Path, separator: str,
                      model_params=None, quant=None) -> Path:
    """Merge a saved PRM LoRA adapter (with its trained head) into its base on the CPU and save a plain
    token-classification checkpoint in `out_dir` (with 4-bit training the base is dequantised first, as
    `models.merge_adapter` does for reward models). Returns `out_dir`."""
    from peft import PeftModel

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    kwargs = {"config": _prm_config(base_dir, tokenizer, separator)}
    dtype = torch.bfloat16 if model_params is not None and model_params.dtype == "bfloat16" else torch.float32
    if quant is not None and quant.load_in_4bit:
        base = AutoModelForTokenClassification.from_pretrained(
            base_dir, quantization_config=bnb_config(quant), device_map="cpu", **kwargs).dequantize(dtype=dtype)
    else:
        base = AutoModelForTokenClassification.from_pretrained(base_dir, dtype=dtype, **kwargs)
    PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().save_pretrained(out_dir)
    normal_permissions(out_dir)
    return Path(out_dir)


def load_prm(path: str | Path):
    """A saved PRM and its tokenizer, loaded with plain `transformers`, in eval mode. Returns (model, tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer(tokenizer)
    model = AutoModelForTokenClassification.from_pretrained(path)
    model.eval()
    return model, tokenizer


def separator_of(model) -> str:
    """The step separator saved in a PRM's config. Raises ValueError for a model without one."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    m = getattr(m, "module", m)
    sep = getattr(m.config, "step_separator", None)
    if not sep:
        raise ValueError(f"{type(m).__name__}: its config has no step_separator; is it a PRM saved by gcrm_kit?")
    return sep


# ------------------------------------------------------------------------------------------------ scoring


def _probs(model, b: dict) -> torch.Tensor:
    dev = next(model.parameters()).device
    out = model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                position_ids=b["position_ids"].to(dev), use_cache=False)
    return torch.softmax(out.logits.float(), dim=-1)[..., RIGHT].cpu()


@torch.no_grad()
def prm_step_scores(model, tokenizer, prompts: Sequence[str], responses: Sequence[str | Sequence[str]],
                    batch_size: int = 64, separator: str | None = None) -> list[np.ndarray]:
    """Per-step probabilities that each step is right: one (S_i,) float array per (prompt, response).

    A response is a solution's text, split into its steps at the model's separator (`separator`, default the one
    in its config), or already a list of steps (a sampled solution may hold an empty step, e.g. after a trailing
    separator: it is scored at its separator like any other). Works on a plain `AutoModelForTokenClassification`
    load and on a model under training (peft, DDP or DeepSpeed wrappers: its own forward is called) alike. Raises
    ValueError naming the response for unequal lengths or an empty response."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    sep = separator or separator_of(model)
    check_tokenizer(tokenizer)
    model.eval()
    items = []
    for i, (p, r) in enumerate(zip(prompts, responses)):
        steps = r.split(sep) if isinstance(r, str) else list(r)
        try:
            items.append(step_positions(tokenizer, p, steps, sep))
        except ValueError as e:
            raise ValueError(f"response {i}: {e}") from None
    out: list[np.ndarray] = [np.zeros(0)] * len(items)
    order = sorted(range(len(items)), key=lambda i: len(items[i][0].input_ids))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        probs = _probs(model, pad_batch([items[i][0] for i in idx], tokenizer.pad_token_id, "right"))
        for j, i in enumerate(idx):
            out[i] = probs[j, items[i][1]].numpy().astype(float)
    return out


@torch.no_grad()
def prm_token_values(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64
                     ) -> TokenValues:
    """The PRM's P(right) at every state of each response, as a `qvalues.TokenValues` whose `head` holds it
    (column 0: the last prompt token, column k: after k response tokens, the last: the EOS; no prototypes), so
    notebook 02's per-token analyses read a PRM like a reward head. Only the separators and the EOS are trained
    positions; the values between them are what the head makes of states it was never trained on."""
    model.eval()
    enc = [encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    lengths = np.array([e.response_len for e in enc], dtype=int)
    K = int(lengths.max()) if len(enc) else 0
    head = np.full((len(enc), K + 1), np.nan, dtype=np.float32)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i].input_ids))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        probs = _probs(model, pad_batch([enc[i] for i in idx], tokenizer.pad_token_id, "right"))
        for j, i in enumerate(idx):
            first = enc[i].response_start - 1
            head[i, : lengths[i] + 1] = probs[j, first:first + lengths[i] + 1].numpy()
    tokens = [tokenizer.convert_ids_to_tokens(e.input_ids[e.response_start:]) for e in enc]
    return TokenValues({}, head, lengths, tokens)
