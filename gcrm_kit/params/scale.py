"""Params pieces shared by every notebook that loads models at scale: the backbone, LoRA, 4-bit loading,
processes and DeepSpeed, and real data sets read through an adapter; `validate_scale` checks them together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..real_data import ADAPTERS
from .core import ParamsError


@dataclass
class ModelParams:
    """The reward model's backbone and how it is loaded. The defaults are the toy world's: its own tiny policy, in
    float32 with the default attention."""

    backbone: str = ""
    """empty: the toy world's policy (trained by notebook 01); otherwise a hub id or a local folder of a causal LM
    checkpoint (the paper initialises its reward model from the generator)"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """weights and compute: `bfloat16` trains in bf16 mixed precision (the paper's setting)"""
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """`auto`: flash-attention 2 when it is importable and a GPU is present, else the model's default attention;
    `flash_attention_2` falls back the same way, with one message saying so"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, about a third more compute)"""
    pad_token: str = ""
    """for a tokenizer without a pad token: an existing token (not EOS) to pad with; empty: its unk token"""


@dataclass
class LoraParams:
    """Low-rank adapters (peft) on the backbone; the scalar `score` head is always trained in full and saved with
    the adapter (peft `modules_to_save`)."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


@dataclass
class QuantParams:
    """4-bit loading of the backbone (bitsandbytes; QLoRA when combined with LoRA). The score head stays unquantised."""

    load_in_4bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["float32", "bfloat16"] = "bfloat16"


@dataclass
class DistributedParams:
    """How many processes train, and through which launcher. One process trains inside the notebook; more run the
    same stage code under the launcher as a subprocess whose log streams into the notebook."""

    n_processes: int = 1
    """processes (GPUs) per node"""
    launcher: Literal["torchrun", "deepspeed"] = "torchrun"
    deepspeed: str = ""
    """a DeepSpeed config: a name in params/deepspeed/ (`zero2`, `zero3`, `zero3_offload`) or a JSON path; empty:
    no DeepSpeed (plain data parallel when n_processes > 1)"""
    gradient_accumulation_steps: int = 1
    """global batch = training.batch_size x n_processes x gradient_accumulation_steps pairs"""


@dataclass
class DatasetSpec:
    """One dataset read through Hugging Face `datasets` and an adapter into the kit's schema (gcrm_kit.real_data)."""

    adapter: str = ""
    """how records are read: see `real_data.ADAPTERS` (e.g. openmathinstruct, hh_rlhf, gsm8k, math, records)"""
    source: str = ""
    """a hub dataset id, or a local file or folder (JSON lines, optionally gzipped, JSON, Parquet or CSV)"""
    config: str = ""
    """the hub dataset's configuration name, if it has several"""
    split: str = "train"
    limit: int = 0
    """use only the first `limit` records (0: all)"""


@dataclass
class DataParams:
    """Where the preference pairs and evaluation sets come from: the toy world, or real datasets."""

    kind: Literal["toy", "real"] = "toy"
    train: DatasetSpec = field(default_factory=DatasetSpec)
    """preference pairs to train on (real data)"""
    test: DatasetSpec = field(default_factory=DatasetSpec)
    """held-out preference pairs for pairwise accuracy; no adapter: `pairs.heldout_fraction` of the train pairs"""
    eval_sets: dict[str, DatasetSpec] = field(default_factory=dict)
    """named evaluation sets for AUROC: generation records with correctness, or benchmark questions with reference
    answers that the backbone then answers greedily (checked against the references)"""
    chat_template: Literal["auto", "never"] = "auto"
    """`auto`: render prompts with the tokenizer's chat template when it has one"""
    max_new_tokens: int = 512
    """greedy generation length for benchmark questions"""


def validate_scale(p) -> None:
    """Checks of the shared scale pieces (model, lora, quant, distributed, data) of a notebook's params `p`."""
    if p.distributed.n_processes < 1 or p.distributed.gradient_accumulation_steps < 1:
        raise ParamsError("distributed.n_processes and distributed.gradient_accumulation_steps must be >= 1")
    if p.quant.load_in_4bit and not p.lora.enabled:
        raise ParamsError("quant.load_in_4bit needs lora.enabled: 4-bit weights are frozen, only adapters train")
    if p.quant.load_in_4bit and p.distributed.deepspeed:
        raise ParamsError("quant.load_in_4bit does not combine with distributed.deepspeed here; use one GPU "
                          "(single_gpu.yaml) or drop the 4-bit loading")
    if p.lora.enabled and (p.lora.r < 1 or not p.lora.target_modules):
        raise ParamsError("lora: need r >= 1 and at least one target module")
    if p.data.kind == "toy":
        if p.model.backbone:
            raise ParamsError("model.backbone is for real data (data.kind: real); the toy world trains its own")
        if p.data.train.adapter or p.data.test.adapter or p.data.eval_sets:
            raise ParamsError("data.train/test/eval_sets are read only with data.kind: real")
    else:
        if not p.model.backbone:
            raise ParamsError("data.kind real needs model.backbone (a hub id or a local checkpoint folder)")
        if not p.data.train.adapter or not p.data.train.source:
            raise ParamsError("data.kind real needs data.train.adapter and data.train.source")

        specs = {"data.train": p.data.train, "data.test": p.data.test,
                 **{f"data.eval_sets.{k}": v for k, v in p.data.eval_sets.items()}}
        for key, spec in specs.items():
            if spec.adapter and spec.adapter not in ADAPTERS:
                raise ParamsError(f"{key}.adapter: unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}")
            if spec.adapter and not spec.source:
                raise ParamsError(f"{key}.source: empty; give a hub dataset id or a local file")
